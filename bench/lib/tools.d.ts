export type SuiteName = 'rate-limit' | 'forward' | 'latency' | 'balance'
export declare const PACKAGE_OF: Readonly<Record<string, string>>
export declare const TOOLS_OF: Readonly<Record<SuiteName, readonly string[]>>
export declare function onPath(name: string, env?: NodeJS.ProcessEnv): boolean
export declare function missingTools(
  suites: readonly SuiteName[],
  exists?: (name: string) => boolean,
): { tools: string[]; message: string } | null
