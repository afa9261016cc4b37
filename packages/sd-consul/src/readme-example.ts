import { createConsulInstancer, createConsulRegistrar } from "@svckit/sd-consul";

const url = "http://127.0.0.1:8500"; // the local Consul agent
const service = { name: "users", address: "10.0.0.7", port: 8080, tags: ["v2"] };
const registrar = createConsulRegistrar({ url, ...service, check: { ttl: "15s" } }); // reports "passing" every 5 s
await registrar.register();
const instancer = createConsulInstancer({ url, service: "users", tags: ["v2"] });
console.log((await instancer.ready()).instances); // [{ address: "10.0.0.7:8080", weight: 1 }]
instancer.close();
await registrar.deregister();
