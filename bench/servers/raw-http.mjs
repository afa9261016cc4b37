// Baseline: node:http with no library. Collects the body, JSON.parse, v = a + b, JSON.stringify.
import http from "node:http";
import { serve } from "./common.mjs";

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/sum") {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": 9 });
    res.end("not found");
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let body;
    try {
      const { a, b } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      body = JSON.stringify({ v: a + b });
    } catch {
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8", "content-length": 8 });
      res.end("bad json");
      return;
    }
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  });
});

serve(server);
