export function parseSections(text: string): [string, string][]
export function mergeSections(
  previous: readonly [string, string][],
  fresh: Readonly<Record<string, string | undefined>>,
  order: readonly string[],
): [string, string][]
export function renderSections(sections: readonly [string, string][]): string
