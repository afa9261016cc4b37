import { createEtcdClient, createEtcdInstancer, createEtcdRegistrar } from "@svckit/sd-etcd";

const client = createEtcdClient("http://127.0.0.1:2379");
const registrar = createEtcdRegistrar(client, {
  prefix: "/services/users/",
  id: "users-1",
  instance: { address: "10.0.0.7:8080", metadata: { zone: "eu-1" } },
});
await registrar.register(); // writes /services/users/users-1 under a 10 s lease it keeps alive
const instancer = createEtcdInstancer(client, { prefix: "/services/users/" });
console.log((await instancer.ready()).instances); // [{ address: "10.0.0.7:8080", metadata: { zone: "eu-1" } }]
await registrar.deregister(); // revokes the lease: the key is gone at once
instancer.close();
client.close();
