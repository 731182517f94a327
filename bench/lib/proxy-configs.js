/**
 * nginx and haproxy as reference proxies, configured the way one would for model servers: one
 * worker, keep-alive to the upstreams, and no response buffering, so a token stream is passed on
 * as it is written (nginx would otherwise hold SSE chunks in its proxy buffers).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, SERVER_CORE, startProcess } from './processes.js'

/**
 * @param {{
 *   dir: string, port: number, upstreams: string[], method?: 'round-robin' | 'least_conn',
 *   runAsRoot?: boolean,
 * }} o upstreams as host:port
 */
export function nginxConfig({ dir, port, upstreams, method = 'round-robin', runAsRoot = false }) {
  return `${runAsRoot ? 'user root;\n' : ''}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backends {
${method === 'least_conn' ? '    least_conn;\n' : ''}${upstreams.map((u) => `    server ${u};`).join('\n')}
    keepalive 256;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${port} reuseport;
    keepalive_requests 100000;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 120s;
    }
  }
}
`
}

/**
 * @param {{ port: number, upstreams: string[], balance?: 'roundrobin' | 'leastconn' }} o
 */
export function haproxyConfig({ port, upstreams, balance = 'leastconn' }) {
  return `global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  option redispatch
  retries 2
  # Without it haproxy may hold small writes back to merge them, which delays each SSE token.
  option http-no-delay
frontend gateway
  bind 127.0.0.1:${port}
  default_backend models
backend models
  balance ${balance}
${upstreams.map((u, i) => `  server b${i} ${u} check inter 1s fall 2 rise 2`).join('\n')}
`
}

/**
 * Starts nginx pinned to the server core, its config in a fresh temp dir removed on stop.
 * @param {{ upstreams: string[], method?: 'round-robin' | 'least_conn', name?: string }} o
 */
export async function startNginx({ upstreams, method = 'round-robin', name = 'nginx' }) {
  const dir = mkdtempSync(join(tmpdir(), 'tgbench-nginx-'))
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub))
  const port = await freePort()
  const runAsRoot = process.getuid?.() === 0
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig({ dir, port, upstreams, method, runAsRoot }))
  const proc = await startProcess({
    name,
    cmd: 'nginx',
    args: ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'],
    core: SERVER_CORE,
    readyPort: port,
  })
  return {
    proc,
    port,
    async stop() {
      await proc.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * @param {{ upstreams: string[], balance?: 'roundrobin' | 'leastconn', name?: string }} o
 */
export async function startHaproxy({ upstreams, balance = 'leastconn', name = 'haproxy' }) {
  const dir = mkdtempSync(join(tmpdir(), 'tgbench-haproxy-'))
  const port = await freePort()
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig({ port, upstreams, balance }))
  const proc = await startProcess({
    name,
    cmd: 'haproxy',
    args: ['-f', join(dir, 'haproxy.cfg'), '-db'],
    core: SERVER_CORE,
    readyPort: port,
  })
  return {
    proc,
    port,
    async stop() {
      await proc.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
