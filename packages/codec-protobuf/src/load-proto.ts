import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, resolve } from "node:path";
import protobuf from "protobufjs";
import { type MessageType, messageTypeOf } from "./message-type.js";

/**
 * One RPC of a service, with everything a transport needs to serve or call it.
 *
 * @typeParam I - the request message's JS shape.
 * @typeParam O - the response message's JS shape.
 *
 * @example
 * ```ts
 * const sum = root.service("pb.Add").methods.Sum;
 * sum.path; // "/pb.Add/Sum"
 * sum.requestType.decode(bytes); // { a: 1n, b: 2n }
 * ```
 */
export interface MethodDescriptor<I = Record<string, unknown>, O = Record<string, unknown>> {
  /** The method name as written in the `.proto` file, e.g. `"Sum"`. */
  readonly name: string;
  /** The gRPC path, `"/<package>.<Service>/<Method>"`, e.g. `"/pb.Add/Sum"`. */
  readonly path: string;
  /** The fully qualified service name, e.g. `"pb.Add"`. */
  readonly service: string;
  /** The request message type. */
  readonly requestType: MessageType<I>;
  /** The response message type. */
  readonly responseType: MessageType<O>;
  /** `true` for client-streaming and bidi methods (`rpc M (stream Req)`). */
  readonly requestStream: boolean;
  /** `true` for server-streaming and bidi methods (`returns (stream Res)`). */
  readonly responseStream: boolean;
}

/**
 * A service from a `.proto` schema: its name and its methods keyed by method name.
 *
 * @example
 * ```ts
 * const add = root.service("pb.Add");
 * Object.keys(add.methods); // ["Sum", "Concat"]
 * ```
 */
export interface ServiceDescriptor {
  /** The fully qualified service name, e.g. `"pb.Add"`. */
  readonly name: string;
  /** The methods, keyed by method name in declaration order. */
  readonly methods: Readonly<Record<string, MethodDescriptor>>;
}

/**
 * Loaded `.proto` definitions: look up message types and services by fully qualified name.
 * The Google well-known types (`google.protobuf.Timestamp`, `Duration`, `Struct`, `Value`,
 * `ListValue`, the wrappers, `Empty`, `Any`, `FieldMask`) are always available, whether or not a
 * file imports them. Lookups are cached: asking twice gives the same object.
 *
 * @example
 * ```ts
 * const root = await loadProto("addsvc.proto");
 * root.services; // ["pb.Add"]
 * const SumRequest = root.messageType<{ a: bigint; b: bigint }>("pb.SumRequest");
 * ```
 */
export interface ProtoRoot {
  /**
   * The message type with this fully qualified name (a leading dot is allowed).
   *
   * @throws Error naming the type when there is no such message type.
   */
  messageType<T = Record<string, unknown>>(name: string): MessageType<T>;
  /**
   * The service with this fully qualified name (a leading dot is allowed).
   *
   * @throws Error naming the service when there is no such service.
   */
  service(name: string): ServiceDescriptor;
  /**
   * The values of an enum by name, e.g. `{ UNKNOWN: 0, ACTIVE: 1 }`: messages hold enum values as
   * numbers, and this turns names into them.
   *
   * @throws Error naming the enum when there is no such enum.
   */
  enumValues(name: string): Readonly<Record<string, number>>;
  /** The fully qualified names of all services, sorted, e.g. `["pb.Add"]`. */
  readonly services: readonly string[];
}

/**
 * Options of {@link loadProto} and {@link loadProtoSync}.
 *
 * @example
 * ```ts
 * const options: LoadProtoOptions = { includeDirs: ["proto", "third_party/googleapis"] };
 * ```
 */
export interface LoadProtoOptions {
  /**
   * Directories to search, in order, for the files given and for `import`s (like `protoc -I`).
   * A path not found in any of them is resolved as protobufjs does: relative to the importing
   * file, and the files given relative to the working directory.
   */
  includeDirs?: readonly string[];
}

// The well-known types protobufjs bundles as `protobuf.common`.
const wellKnownFiles = [
  "google/protobuf/any.proto",
  "google/protobuf/duration.proto",
  "google/protobuf/empty.proto",
  "google/protobuf/field_mask.proto",
  "google/protobuf/struct.proto",
  "google/protobuf/timestamp.proto",
  "google/protobuf/wrappers.proto",
];

// protobufjs also ships descriptor.proto, api.proto, type.proto and source_context.proto as files.
const bundledProtoDir = dirname(createRequire(import.meta.url).resolve("protobufjs/package.json"));

const parseOptions = { keepCase: false } as const;

/**
 * Loads `.proto` files (and what they import) and returns their definitions. No code generation
 * and no `@grpc/proto-loader`: the schema is read with protobufjs at run time.
 *
 * @param files - one path or several; resolved against `options.includeDirs` first.
 * @param options - include directories.
 * @returns the loaded definitions.
 * @throws Error (not a ServiceError: this is setup) when a file cannot be read or parsed, or a type
 *   it names is not defined.
 *
 * @example
 * ```ts
 * const root = await loadProto("addsvc.proto", { includeDirs: ["proto"] });
 * const add = root.service("pb.Add"); // add.methods.Sum.path === "/pb.Add/Sum"
 * ```
 */
export async function loadProto(
  files: string | readonly string[],
  options?: LoadProtoOptions,
): Promise<ProtoRoot> {
  const root = newRoot(options?.includeDirs);
  await root.load(fileList(files), parseOptions);
  return createProtoRoot(root);
}

/**
 * The synchronous form of {@link loadProto}, for setup code that cannot wait.
 *
 * @example
 * ```ts
 * const root = loadProtoSync(["addsvc.proto", "health.proto"], { includeDirs: ["proto"] });
 * ```
 */
export function loadProtoSync(files: string | readonly string[], options?: LoadProtoOptions): ProtoRoot {
  const root = newRoot(options?.includeDirs);
  root.loadSync(fileList(files), parseOptions);
  return createProtoRoot(root);
}

/**
 * Reads definitions from `.proto` source text. It may import only the well-known types
 * (`import "google/protobuf/timestamp.proto";` and the like); use {@link loadProto} for files
 * that import each other.
 *
 * @param source - the contents of a `.proto` file.
 * @throws Error when the text cannot be parsed, imports another file, or names an undefined type.
 *
 * @example
 * ```ts
 * const root = parseProto(`syntax = "proto3"; package pb;
 *   message SumRequest { int64 a = 1; int64 b = 2; }`);
 * root.messageType("pb.SumRequest").decode(bytes);
 * ```
 */
export function parseProto(source: string): ProtoRoot {
  const root = new protobuf.Root();
  const parsed = protobuf.parse(source, root, parseOptions);
  for (const file of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) {
    if (!wellKnownFiles.includes(file)) {
      throw new Error(
        `parseProto cannot import "${file}": only the well-known types are built in; use loadProto for files`,
      );
    }
  }
  return createProtoRoot(root);
}

function fileList(files: string | readonly string[]): string[] {
  return typeof files === "string" ? [files] : [...files];
}

function newRoot(includeDirs: readonly string[] | undefined): protobuf.Root {
  const root = new protobuf.Root();
  const dirs = [...(includeDirs ?? [])];
  root.resolvePath = (origin: string, target: string): string => {
    if (isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = resolve(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    const fallback = protobuf.util.path.resolve(origin, target);
    if (target.startsWith("google/protobuf/") && !existsSync(fallback)) {
      const bundled = join(bundledProtoDir, target);
      if (existsSync(bundled)) return bundled;
    }
    return fallback;
  };
  return root;
}

/** Adds the bundled well-known types the files did not import, unless a file defines them itself. */
function addWellKnownTypes(root: protobuf.Root): void {
  for (const file of wellKnownFiles) {
    if (root.files.includes(file)) continue;
    const json = protobuf.common.get(file);
    const defined = json === null ? [] : typeNamesIn(json);
    if (json === null || defined.some((name) => root.lookup(name)?.fullName === name)) continue;
    root.files.push(file);
    root.addJSON(json.nested ?? {});
  }
  root.resolveAll();
}

function typeNamesIn(json: protobuf.INamespace, prefix = ""): string[] {
  const names: string[] = [];
  for (const [name, nested] of Object.entries(json.nested ?? {})) {
    const full = `${prefix}.${name}`;
    if ("fields" in nested || "values" in nested) names.push(full);
    if ("nested" in nested) names.push(...typeNamesIn(nested as protobuf.INamespace, full));
  }
  return names;
}

function createProtoRoot(root: protobuf.Root): ProtoRoot {
  addWellKnownTypes(root);
  const services = new Map<string, ServiceDescriptor>();
  const serviceNames = Object.freeze(
    collectServices(root)
      .map((s) => s.fullName.slice(1))
      .sort(),
  );

  // Names are fully qualified: protobufjs would also find "SumRequest" inside "pb", which
  // becomes a hint in the error instead.
  function lookup(name: string): { found: protobuf.ReflectionObject | null; near?: string } {
    const absolute = name.startsWith(".") ? name : `.${name}`;
    const found = root.lookup(absolute);
    if (found === null || found.fullName === absolute) return { found };
    return { found: null, near: found.fullName.slice(1) };
  }

  function messageType<T = Record<string, unknown>>(name: string): MessageType<T> {
    const { found, near } = lookup(name);
    if (!(found instanceof protobuf.Type)) throw notFound(name, found, "message type", near);
    return messageTypeOf<T>(found);
  }

  function service(name: string): ServiceDescriptor {
    const { found, near } = lookup(name);
    if (!(found instanceof protobuf.Service)) throw notFound(name, found, "service", near);
    const cached = services.get(found.fullName);
    if (cached !== undefined) return cached;
    const created = describeService(found);
    services.set(found.fullName, created);
    return created;
  }

  function enumValues(name: string): Readonly<Record<string, number>> {
    const { found, near } = lookup(name);
    if (!(found instanceof protobuf.Enum)) throw notFound(name, found, "enum", near);
    return Object.freeze({ ...found.values });
  }

  return Object.freeze({ messageType, service, enumValues, services: serviceNames });
}

function notFound(
  name: string,
  found: protobuf.ReflectionObject | null,
  wanted: string,
  near: string | undefined,
): Error {
  if (found === null) {
    const hint = near === undefined ? "" : ` (names are fully qualified: did you mean "${near}"?)`;
    return new Error(`unknown ${wanted} "${name}"${hint}`);
  }
  const what =
    found instanceof protobuf.Type
      ? "a message type"
      : found instanceof protobuf.Service
        ? "a service"
        : found instanceof protobuf.Enum
          ? "an enum"
          : "a package";
  return new Error(`"${name}" is ${what}, not ${wanted === "enum" ? "an enum" : `a ${wanted}`}`);
}

function collectServices(namespace: protobuf.NamespaceBase): protobuf.Service[] {
  const found: protobuf.Service[] = [];
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Service) found.push(nested);
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) {
      found.push(...collectServices(nested));
    }
  }
  return found;
}

function describeService(service: protobuf.Service): ServiceDescriptor {
  const name = service.fullName.slice(1);
  const methods: Record<string, MethodDescriptor> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (request === null || response === null) {
      throw new Error(`method ${name}.${method.name} has unresolved request or response types`);
    }
    methods[method.name] = Object.freeze({
      name: method.name,
      path: `/${name}/${method.name}`,
      service: name,
      requestType: messageTypeOf<Record<string, unknown>>(request),
      responseType: messageTypeOf<Record<string, unknown>>(response),
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
    });
  }
  return Object.freeze({ name, methods: Object.freeze(methods) });
}
