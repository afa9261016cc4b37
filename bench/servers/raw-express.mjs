// Baseline: express 5 with express.json() and a plain route handler.
import http from "node:http";
import express from "express";
import { serve } from "./common.mjs";

const app = express();
app.use(express.json());
app.post("/sum", (req, res) => {
  res.json({ v: req.body.a + req.body.b });
});

serve(http.createServer(app));
