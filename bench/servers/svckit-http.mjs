// svckit on node:http: the endpoint served by createHttpHandler behind the svckit router.
// An optional argument "spin=<µs>" makes the endpoint busy-wait that long per call before answering:
// a known amount of in-process work, to read off what a microsecond of per-call work costs at load
// on this machine (the observability group's yardstick).
import http from "node:http";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import { serve } from "./common.mjs";

const spinArg = /^spin=(\d+(?:\.\d+)?)$/.exec(process.argv[2] ?? "");
if (process.argv[2] !== undefined && spinArg === null) {
  throw new Error(`unknown argument "${process.argv[2]}" (expected spin=<µs>)`);
}
const spinMs = spinArg === null ? 0 : Number(spinArg[1]) / 1000;

const sum = async (_ctx, req) => ({ v: req.a + req.b });
const spinning = async (_ctx, req) => {
  const until = performance.now() + spinMs;
  while (performance.now() < until) {
    // busy-wait: the work stands for a middleware's CPU time
  }
  return { v: req.a + req.b };
};
const handler = createHttpHandler(spinMs > 0 ? spinning : sum, jsonRequestDecoder(), encodeJsonResponse);
const router = createRouter();
router.post("/sum", handler);

serve(http.createServer(router.handle));
