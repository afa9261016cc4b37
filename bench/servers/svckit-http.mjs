// svckit on node:http: the endpoint served by createHttpHandler behind the svckit router.
import http from "node:http";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import { serve } from "./common.mjs";

const sum = async (_ctx, req) => ({ v: req.a + req.b });
const handler = createHttpHandler(sum, jsonRequestDecoder(), encodeJsonResponse);
const router = createRouter();
router.post("/sum", handler);

serve(http.createServer(router.handle));
