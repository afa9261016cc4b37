// svckit on grpc-js: the proto loaded by @svckit/codec-protobuf (int64 fields are bigints), the Sum
// endpoint served by @svckit/transport-grpc's createGrpcHandler + bindService. Like go-kit's addsvc,
// the decoder turns the request message into the endpoint's request (int64 → number) and the encoder
// turns the endpoint's response back into a message (number → int64).
import grpc from "@grpc/grpc-js";
import { loadProtoSync } from "@svckit/codec-protobuf";
import { bindService, createGrpcHandler } from "@svckit/transport-grpc";
import { ADDSVC_PROTO, serveGrpc } from "./grpc-common.mjs";

const add = loadProtoSync(ADDSVC_PROTO).service("pb.Add");
const sum = async (_ctx, req) => ({ v: req.a + req.b });
const decodeSumRequest = (_ctx, message) => ({ a: Number(message.a), b: Number(message.b) });
const encodeSumResponse = (_ctx, response) => ({ v: BigInt(response.v), err: "" });

const server = new grpc.Server();
bindService(server, add, { Sum: createGrpcHandler(sum, decodeSumRequest, encodeSumResponse) });

serveGrpc(server);
