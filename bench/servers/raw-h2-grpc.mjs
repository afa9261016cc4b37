// Ceiling: a library-free gRPC server on node:http2 + protobufjs, the least a Node gRPC server can do for
// /pb.Add/Sum: check content-type and path, collect the request body, decode the length-prefixed
// SumRequest, answer with response headers, one DATA frame holding the framed SumReply and the
// grpc-status trailer. No metadata, deadlines, compression or cancellation handling: not a server to
// deploy, only the bound that svckit's node:http2 engine (@svckit/grpc-h2) is measured against.
import http2 from "node:http2";
import protobuf from "protobufjs";
import { ADDSVC_PROTO } from "./grpc-common.mjs";

const root = protobuf.loadSync(ADDSVC_PROTO);
const SumRequest = root.lookupType("pb.SumRequest");
const SumReply = root.lookupType("pb.SumReply");

const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" };
const RESPOND_OPTIONS = { waitForTrailers: true, sendDate: false };
const OK_TRAILERS = { "grpc-status": "0" };

function sendOkTrailers() {
  this.sendTrailers(OK_TRAILERS);
}

function fail(stream, code, message) {
  stream.respond(
    { ...RESPONSE_HEADERS, "grpc-status": String(code), "grpc-message": encodeURIComponent(message) },
    { endStream: true },
  );
}

function answer(stream, body) {
  if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
    fail(stream, 13, "malformed request");
    return;
  }
  let request;
  try {
    request = SumRequest.decode(body.subarray(5));
  } catch {
    fail(stream, 3, "invalid SumRequest");
    return;
  }
  const message = SumReply.encode({ v: request.a.add(request.b), err: "" }).finish();
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  stream.respond(RESPONSE_HEADERS, RESPOND_OPTIONS);
  stream.on("wantTrailers", sendOkTrailers);
  stream.end(frame);
}

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  if (!String(headers["content-type"]).startsWith("application/grpc")) {
    stream.respond({ ":status": 415 }, { endStream: true });
    return;
  }
  if (headers[":path"] !== "/pb.Add/Sum") {
    fail(stream, 12, `unknown method ${headers[":path"]}`);
    return;
  }
  let body;
  stream.on("data", (chunk) => {
    body = body === undefined ? chunk : Buffer.concat([body, chunk]);
  });
  stream.on("end", () => answer(stream, body ?? Buffer.alloc(0)));
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
