// Baseline for the JSON-RPC variants: node:http with no library. Collects the body, JSON.parse, checks
// the envelope just enough to answer `sum` (jsonrpc "2.0", method, params {a, b}, id), JSON.stringify.
import http from "node:http";
import { serve } from "./common.mjs";

function answer(body) {
  let request;
  try {
    request = JSON.parse(body);
  } catch {
    return { jsonrpc: "2.0", error: { code: -32700, message: "parse error" }, id: null };
  }
  const id = request?.id ?? null;
  if (request?.jsonrpc !== "2.0" || request.method !== "sum" || typeof request.params !== "object") {
    return { jsonrpc: "2.0", error: { code: -32600, message: "invalid request" }, id };
  }
  const { a, b } = request.params;
  return { jsonrpc: "2.0", result: { v: a + b }, id };
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405, { "content-type": "text/plain; charset=utf-8", "content-length": 18 });
    res.end("method not allowed");
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = JSON.stringify(answer(Buffer.concat(chunks).toString("utf8")));
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  });
});

serve(server);
