/**
 * One line of the gateway's JSON access log (log_format embedctl_json in
 * templates/nginx/nginx.conf), read by `status` (breakers), rollout's evidence and the runtime's
 * gateway-log follower alike. Lives in common/ because src/ and runtime/ both read it.
 */
export interface GatewayLogEntry {
  time?: string;
  /** Seconds since the epoch, millisecond resolution: when nginx finished the request. */
  msec?: number;
  request_id?: string;
  method?: string;
  uri?: string;
  status?: number;
  /** What split_clients chose: selfhosted or hosted (computed for every request, pinned or not). */
  split?: string;
  role?: string;
  caller?: string;
  /** X-Embedctl-Backend as sent: selfhosted, hosted or nginx (the gateway answered itself). */
  backend?: string;
  /** X-Embedctl-Fallback as sent: "yes" when hosted answered because every replica failed. */
  fallback?: string;
  upstream_addr?: string;
  upstream_status?: string;
  request_time?: number;
}

/** The entry on one log line; undefined for anything that is not a JSON object. */
export function parseGatewayLogLine(line: string): GatewayLogEntry | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const e = JSON.parse(line) as unknown;
    return e !== null && typeof e === 'object' && !Array.isArray(e) ? (e as GatewayLogEntry) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether hosted answered a request the split meant for self-hosted. Logs written before the
 * format carried `fallback` say it only through split and backend; an operator pinning a
 * request to hosted looks the same there, so those are left out.
 */
export function isFallback(e: GatewayLogEntry): boolean {
  if (e.fallback !== undefined) return e.fallback === 'yes';
  return e.split === 'selfhosted' && e.backend === 'hosted' && e.role !== 'operator';
}
