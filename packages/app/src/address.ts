import { networkInterfaces } from "node:os";
import { Code, ServiceError } from "@svckit/endpoint";

/** A parsed `host:port`; `host` is `""` for "every interface" (`":8080"`). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port`. The port must be 0..65535 in decimal digits (0 picks a
 * free port). Throws a ServiceError INVALID_ARGUMENT that names the address otherwise.
 */
export function parseAddress(address: string): HostPort {
  const i = address.lastIndexOf(":");
  const digits = i < 0 ? "" : address.slice(i + 1);
  let host = i < 0 ? "" : address.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  // Digits only: Number() alone would take "", " ", "0x50" and "1e3" as ports.
  const port = /^\d{1,5}$/.test(digits) ? Number(digits) : Number.NaN;
  if (i < 0 || !(port <= 65535) || /[\s[\]]/.test(host) || (host.includes(":") && !address.startsWith("["))) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid address ${JSON.stringify(address)}: expected host:port, [ipv6]:port or :port with a port from 0 to 65535`,
    );
  }
  return { host, port };
}

/** `host:port`, with IPv6 hosts in brackets. */
export function formatAddress(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

const UNSPECIFIED = new Set(["", "0.0.0.0", "::", "[::]"]);

/**
 * The host other machines can reach a server bound to `host` on: `host` itself, or for an
 * unspecified host ("", 0.0.0.0, ::) the first non-internal IPv4 address of this machine
 * (127.0.0.1 when there is none), as Kratos does for its registered endpoints.
 */
export function advertisedHost(host: string): string {
  if (!UNSPECIFIED.has(host)) return host;
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) {
      if (nic.family === "IPv4" && !nic.internal) return nic.address;
    }
  }
  return "127.0.0.1";
}
