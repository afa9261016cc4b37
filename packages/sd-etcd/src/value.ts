import type { Instance, InstanceInit } from "@svckit/sd";

/**
 * How a registrar writes an instance into its etcd key: `"json"` (the default) writes
 * `{"address", "metadata"?, "weight"?}`; `"address"` writes only the address, as go-kit's etcd
 * registrar does, for instancers (go-kit's among them) that read the value as a plain address.
 */
export type EtcdValueEncoding = "json" | "address";

/** Validates an instance given to a registrar and copies it; throws TypeError / RangeError. */
export function checkInstance(init: InstanceInit, where: string): Instance {
  if (typeof init === "string") return { address: checkAddress(init, where) };
  if (typeof init !== "object" || init === null) {
    throw new TypeError(`${where}: instance must be an address string or { address }, got ${String(init)}`);
  }
  const address = checkAddress(init.address, where);
  const out: { address: string; metadata?: Record<string, string>; weight?: number } = { address };
  if (init.weight !== undefined) out.weight = checkWeight(init.weight, address, where);
  if (init.metadata !== undefined) out.metadata = checkMetadata(init.metadata, address, where);
  return out;
}

function checkAddress(address: unknown, where: string): string {
  if (typeof address !== "string" || address.trim() === "") {
    throw new TypeError(
      `${where}: an instance address must be a non-empty string, got ${JSON.stringify(address) ?? String(address)}`,
    );
  }
  return address;
}

function checkWeight(weight: unknown, address: string, where: string): number {
  if (typeof weight !== "number" || !Number.isFinite(weight) || weight < 0) {
    throw new RangeError(
      `${where}: weight of instance ${address} must be a finite number >= 0, got ${typeof weight === "number" ? String(weight) : (JSON.stringify(weight) ?? String(weight))}`,
    );
  }
  return weight;
}

function checkMetadata(metadata: unknown, address: string, where: string): Record<string, string> {
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new TypeError(`${where}: metadata of instance ${address} must be an object of strings`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new TypeError(
        `${where}: metadata of instance ${address} must be an object of strings, but ${JSON.stringify(key)} is ${typeof value}`,
      );
    }
    out[key] = value;
  }
  return out;
}

/** The value a registrar stores for `instance`. */
export function encodeValue(instance: Instance, encoding: EtcdValueEncoding): string {
  if (encoding === "address") return instance.address;
  const doc: { address: string; metadata?: Readonly<Record<string, string>>; weight?: number } = {
    address: instance.address,
  };
  if (instance.metadata !== undefined) doc.metadata = instance.metadata;
  if (instance.weight !== undefined) doc.weight = instance.weight;
  return JSON.stringify(doc);
}

/**
 * Reads the instance stored in a key: a JSON document `{address, metadata?, weight?}` (a value that
 * starts with `{`), a JSON string, or else the whole value as a plain address (go-kit's layout).
 * Throws a TypeError / RangeError that says what is wrong with it.
 */
export function decodeValue(value: string): Instance {
  const text = value.trim();
  const where = "value";
  if (text === "") throw new TypeError("value is empty: expected an address or a JSON instance");
  if (text.startsWith("{")) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw new TypeError(`value is malformed JSON: ${(error as Error).message}`);
    }
    return checkInstance(doc as InstanceInit, where);
  }
  if (text.startsWith('"')) {
    let address: unknown;
    try {
      address = JSON.parse(text);
    } catch (error) {
      throw new TypeError(`value is malformed JSON: ${(error as Error).message}`);
    }
    return { address: checkAddress(address, where) };
  }
  return { address: text };
}
