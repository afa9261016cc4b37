// Where the gateway finds the instances of each service: a static list, etcd or Consul. The backends'
// libraries are imported only when chosen, so a static gateway never loads etcd3 and its gRPC stack.
import { createStaticInstancer, type Instancer, type InstancerState } from "@svckit/sd";
import { type GatewayConfig, SERVICE_NAMES, type ServiceName } from "./flags.js";

/** The instancers of every routed service, and their shared backend connection. */
export interface Discovery {
  /** A live set of instances per service. */
  readonly instancers: Readonly<Record<ServiceName, Instancer>>;
  /** Resolves once every instancer has answered (or failed) once; never rejects. */
  ready(): Promise<void>;
  /** Stops following the backend and closes its connection. */
  close(): Promise<void>;
}

interface ReadyInstancer extends Instancer {
  ready(): Promise<InstancerState>;
}

function backed(
  instancers: Record<ServiceName, ReadyInstancer>,
  closeBackend: () => void | Promise<void>,
): Discovery {
  return {
    instancers,
    ready: async () => {
      await Promise.all(SERVICE_NAMES.map((name) => instancers[name].ready()));
    },
    close: async () => {
      for (const name of SERVICE_NAMES) instancers[name].close();
      await closeBackend();
    },
  };
}

/**
 * Makes the instancers `config.sd` asks for: `static` lists `config.instances` (base URLs);
 * `etcd` watches the keys under `<etcdPrefix><service>/` (values as `@svckit/sd-etcd` and go-kit's
 * registrar write them: JSON or a plain `host:port`); `consul` follows the passing instances
 * registered under the service's name (`addsvc`, `stringsvc`) with blocking queries.
 *
 * @example
 * ```ts
 * const discovery = await createDiscovery(config);
 * await discovery.ready();
 * discovery.instancers.addsvc.current().instances; // [{ address: "http://127.0.0.1:8081" }]
 * ```
 */
export async function createDiscovery(config: GatewayConfig): Promise<Discovery> {
  switch (config.sd) {
    case "static": {
      const instancers = {} as Record<ServiceName, Instancer>;
      for (const name of SERVICE_NAMES) instancers[name] = createStaticInstancer(config.instances[name]);
      return {
        instancers,
        ready: async () => {},
        close: async () => {
          for (const name of SERVICE_NAMES) instancers[name].close();
        },
      };
    }
    case "etcd": {
      const { createEtcdClient, createEtcdInstancer } = await import("@svckit/sd-etcd");
      const client = createEtcdClient([...config.etcdEndpoints]);
      const instancers = {} as Record<ServiceName, ReadyInstancer>;
      for (const name of SERVICE_NAMES) {
        instancers[name] = createEtcdInstancer(client, { prefix: `${config.etcdPrefix}${name}/` });
      }
      return backed(instancers, () => client.close());
    }
    case "consul": {
      const { createConsulInstancer } = await import("@svckit/sd-consul");
      const instancers = {} as Record<ServiceName, ReadyInstancer>;
      for (const name of SERVICE_NAMES) {
        instancers[name] = createConsulInstancer({ url: config.consulAddr, service: name });
      }
      return backed(instancers, () => {});
    }
  }
}
