// svckit inside express 5: the same svckit handler mounted as an express route (no express.json()).
import http from "node:http";
import { createHttpHandler, encodeJsonResponse, jsonRequestDecoder } from "@svckit/transport-http";
import express from "express";
import { serve } from "./common.mjs";

const sum = async (_ctx, req) => ({ v: req.a + req.b });
const handler = createHttpHandler(sum, jsonRequestDecoder(), encodeJsonResponse);
const app = express();
app.post("/sum", handler);

serve(http.createServer(app));
