// Command addclient calls pb.Add/Sum or pb.Add/Concat with grpc-go, the way go-kit's addcli does
// over gRPC, and prints the answer as addcli prints it:
//
//	addclient -addr 127.0.0.1:8082 1 2                  → 1 + 2 = 3
//	addclient -addr 127.0.0.1:8082 -method concat ab cd → "ab" + "cd" = "abcd"
//
// A reply whose err field is set is an error, as go-kit's client makes it (str2err); errors go to
// stderr as "error: <err>" with exit status 1. The messages are hand-written proto3 structs for
// github.com/golang/protobuf 1.3 (struct tags, no generated code), so it builds in GOPATH mode against
// Debian's golang-google-grpc-dev and golang-github-golang-protobuf-1-3-dev.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
)

// SumRequest is pb.SumRequest.
type SumRequest struct {
	A int64 `protobuf:"varint,1,opt,name=a,proto3" json:"a,omitempty"`
	B int64 `protobuf:"varint,2,opt,name=b,proto3" json:"b,omitempty"`
}

func (m *SumRequest) Reset()         { *m = SumRequest{} }
func (m *SumRequest) String() string { return proto.CompactTextString(m) }
func (*SumRequest) ProtoMessage()    {}

// SumReply is pb.SumReply.
type SumReply struct {
	V   int64  `protobuf:"varint,1,opt,name=v,proto3" json:"v,omitempty"`
	Err string `protobuf:"bytes,2,opt,name=err,proto3" json:"err,omitempty"`
}

func (m *SumReply) Reset()         { *m = SumReply{} }
func (m *SumReply) String() string { return proto.CompactTextString(m) }
func (*SumReply) ProtoMessage()    {}

// ConcatRequest is pb.ConcatRequest.
type ConcatRequest struct {
	A string `protobuf:"bytes,1,opt,name=a,proto3" json:"a,omitempty"`
	B string `protobuf:"bytes,2,opt,name=b,proto3" json:"b,omitempty"`
}

func (m *ConcatRequest) Reset()         { *m = ConcatRequest{} }
func (m *ConcatRequest) String() string { return proto.CompactTextString(m) }
func (*ConcatRequest) ProtoMessage()    {}

// ConcatReply is pb.ConcatReply.
type ConcatReply struct {
	V   string `protobuf:"bytes,1,opt,name=v,proto3" json:"v,omitempty"`
	Err string `protobuf:"bytes,2,opt,name=err,proto3" json:"err,omitempty"`
}

func (m *ConcatReply) Reset()         { *m = ConcatReply{} }
func (m *ConcatReply) String() string { return proto.CompactTextString(m) }
func (*ConcatReply) ProtoMessage()    {}

// str2err is go-kit's: an empty err field is no error.
func str2err(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "error: %v\n", err)
	os.Exit(1)
}

func main() {
	fs := flag.NewFlagSet("addclient", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8082", "gRPC address of addsvc")
	method := fs.String("method", "sum", "sum, concat")
	fs.Parse(os.Args[1:])
	if len(fs.Args()) != 2 {
		fmt.Fprintf(os.Stderr, "usage: addclient [-addr host:port] [-method sum|concat] <a> <b>\n")
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *addr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fail(err)
	}
	defer conn.Close()

	switch *method {
	case "sum":
		a, _ := strconv.ParseInt(fs.Args()[0], 10, 64)
		b, _ := strconv.ParseInt(fs.Args()[1], 10, 64)
		reply := new(SumReply)
		if err := conn.Invoke(ctx, "/pb.Add/Sum", &SumRequest{A: a, B: b}, reply); err != nil {
			fail(err)
		}
		if err := str2err(reply.Err); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stdout, "%d + %d = %d\n", a, b, reply.V)
	case "concat":
		a, b := fs.Args()[0], fs.Args()[1]
		reply := new(ConcatReply)
		if err := conn.Invoke(ctx, "/pb.Add/Concat", &ConcatRequest{A: a, B: b}, reply); err != nil {
			fail(err)
		}
		if err := str2err(reply.Err); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stdout, "%q + %q = %q\n", a, b, reply.V)
	default:
		fmt.Fprintf(os.Stderr, "error: invalid method %q\n", *method)
		os.Exit(2)
	}
}
