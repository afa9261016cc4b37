import { createDnsAddressInstancer, createDnsSrvInstancer } from "@svckit/sd-dns";

// SRV: the lowest-priority targets, weighted by their SRV weight, looked up every 10 s
const users = createDnsSrvInstancer("_http._tcp.users.default.svc.cluster.local", { interval: 10_000 });
console.log((await users.ready()).instances); // [{ address: "users-0.users.default.svc.cluster.local:8080", weight: 10 }]
// A/AAAA: every address of a host, on a fixed port, looked up again when the shortest TTL runs out
const redis = createDnsAddressInstancer("redis.internal", 6379);
console.log((await redis.ready()).instances); // [{ address: "10.0.0.5:6379" }, { address: "[fd00::5]:6379" }]
users.close();
redis.close();
