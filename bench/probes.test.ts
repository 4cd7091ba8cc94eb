import assert from "node:assert/strict";
import { test } from "node:test";
import {
  netlinkSubscribed, parseAgentStart, parseBirdMemoryTotal, parseIperfJson, parseMonitorRouteLine, parsePingSummary, parsePingTimes, parseProcStat,
  parseVmRssKiB, reconfiguredWith,
} from "./probes.js";

test("ip -ts monitor route lines: time with microseconds, added or deleted, destination, proto", () => {
  const add = parseMonitorRouteLine("[2026-11-22T11:48:13.769579] 10.244.20.0/24 via 10.244.20.0 dev trellis.vxlan proto 202 onlink ");
  assert.deepEqual(add, { atMs: Date.UTC(2026, 10, 22, 11, 48, 13) + 769.579, deleted: false, dst: "10.244.20.0/24", proto: "202" });
  const del = parseMonitorRouteLine("[2026-11-22T11:48:13.000001] Deleted 10.244.20.0/24 via 10.99.1.20 dev eth0 proto 202");
  assert.equal(del?.deleted, true);
  assert.equal(del?.dst, "10.244.20.0/24");
  assert.equal(parseMonitorRouteLine("[2026-11-22T11:48:13.1] local 10.0.0.1 dev lo table local proto kernel")?.proto, "kernel");
  assert.equal(parseMonitorRouteLine("10.244.20.0/24 via 10.244.20.0 dev x"), undefined);
});

test("ip -ts monitor route lines of BIRD's routes in table 203", () => {
  const add = parseMonitorRouteLine("[2026-12-06T23:31:24.633752] 10.244.130.0/24 via 10.99.1.13 dev eth0 table 203 proto bird metric 32 ");
  assert.deepEqual(add, { atMs: Date.UTC(2026, 11, 6, 23, 31, 24) + 633.752, deleted: false, dst: "10.244.130.0/24", proto: "bird", table: "203" });
  assert.equal(parseMonitorRouteLine("[2026-12-06T23:31:24.6] Deleted 10.244.130.0/24 via 10.99.1.13 dev eth0 table 203 proto bird metric 32")?.deleted, true);
  assert.equal(parseMonitorRouteLine("[2026-12-06T23:31:24.6] 10.244.130.0/24 via 10.99.1.13 dev eth0 proto 202")?.table, undefined, "main table: not named");
});

test("agent log: the first 'starting' and lease lines of a node", () => {
  const log = [
    "2026-11-22T11:48:13.409Z agent[node10] starting (datastore embedded)",
    "2026-11-22T11:48:13.485Z agent[node10] underlay: eth0 10.99.1.20/24 mtu 1500",
    "2026-11-22T11:48:13.630Z agent[node10] leased a new block: 10.244.20.0/24 (public IP 10.99.1.20)",
    "2026-11-22T11:48:14.000Z agent[node10] kept its lease: 10.244.99.0/24 (later)",
  ].join("\n");
  assert.deepEqual(parseAgentStart(log, "node10"), {
    startingMs: Date.parse("2026-11-22T11:48:13.409Z"), leasedMs: Date.parse("2026-11-22T11:48:13.630Z"), block: "10.244.20.0/24",
  });
  assert.deepEqual(parseAgentStart(log, "node1"), {});
});

test("agent log, bgp backend: when BIRD was started, with how many sessions", () => {
  const log = [
    "2026-12-06T23:30:58.655Z agent[node3] starting (datastore embedded)",
    "2026-12-06T23:30:58.687Z agent[node3] leased a new block: 10.244.130.0/24 (public IP 10.99.1.13, backend bgp, ttl 10s)",
    "2026-12-06T23:30:58.932Z agent[node3] bgp: started BIRD (pid 22600), AS 64512, 1 session(s)",
    "2026-12-06T23:31:30.000Z agent[node3] bgp: started BIRD (pid 22700) in graceful-restart recovery, AS 64512, 2 session(s)",
  ].join("\n");
  const s = parseAgentStart(log, "node3");
  assert.equal(s.birdStartedMs, Date.parse("2026-12-06T23:30:58.932Z"));
  assert.equal(s.birdSessions, 1);
  assert.equal(parseAgentStart(log.split("\n")[3]!, "node3").birdSessions, 2, "a recovery start counts too");
});

test("agent log: the first BIRD reconfiguration that holds a protocol", () => {
  const log = [
    "2026-12-06T23:30:58.969Z agent[node1] bgp: BIRD reconfigured: node_node2 (mesh), node_node3 (mesh)",
    "2026-12-06T23:30:59.100Z agent[node2] bgp: BIRD reconfigured: node_node1 (mesh), node_node10 (mesh)",
    "2026-12-06T23:30:59.500Z agent[node1] bgp: BIRD reconfigured: node_node2 (mesh), node_node10 (rr-client)",
    "2026-12-06T23:30:59.900Z agent[node1] bgp: BIRD reconfigured: node_node2 (mesh), node_node10 (mesh)",
  ].join("\n");
  assert.equal(reconfiguredWith(log, "node1", "node_node10"), Date.parse("2026-12-06T23:30:59.500Z"));
  assert.equal(reconfiguredWith(log, "node1", "node_node1"), undefined, "node_node1 is not node_node10's prefix match");
  assert.equal(reconfiguredWith(log, "node3", "node_node10"), undefined);
  assert.equal(reconfiguredWith("2026-12-06T23:30:59.000Z agent[node1] bgp: BIRD reconfigured: no sessions", "node1", "node_node10"), undefined);
});

test("birdc show memory: the effective total", () => {
  const text = [
    "BIRD 2.0.12 ready.", "BIRD memory usage", "                  Effective    Overhead",
    "Routing tables:     19.5 kB   9288.0  B", "Total:             102.8 kB     99.7 kB",
  ].join("\n");
  assert.equal(parseBirdMemoryTotal(text), 102.8 * 1024);
  assert.equal(parseBirdMemoryTotal("Total:            1.5 MB   2.0 kB"), 1.5 * 1024 * 1024);
  assert.equal(parseBirdMemoryTotal("Total:             512.0  B   1.0 kB"), 512);
  assert.equal(parseBirdMemoryTotal("BIRD 2.0.12 ready.\nAccess denied"), undefined);
});

test("/proc/<pid>/stat CPU fields, even with spaces and parentheses in comm", () => {
  const stat = "1234 (tre (l) is) S 1 1234 1234 0 -1 4194560 500 0 0 0 17 5 3 2 20 0 4 0 100 0 0";
  assert.deepEqual(parseProcStat(stat), { utime: 17, stime: 5, cutime: 3, cstime: 2 });
  assert.equal(parseVmRssKiB("Name:\ttrellis\nVmRSS:\t   51234 kB\n"), 51234);
  assert.equal(parseVmRssKiB("Name:\tkthread\n"), undefined);
});

test("netlink table: a subscribed socket of the process", () => {
  const table = [
    "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode",
    "00000000581aca86 0   0          00000000 0        0        0     2        0        1863393",
    "000000003d5ec4f3 0   23931      04000440 0        0        0     2        0        1863407",
    "00000000353ad34d 0   4134467226 00000000 0        0        0     2        0        1863408",
  ].join("\n");
  assert.equal(netlinkSubscribed(table, new Set(["1863407"])), true);
  assert.equal(netlinkSubscribed(table, new Set(["1863408"])), false);
  assert.equal(netlinkSubscribed(table, new Set()), false);
});

test("ping -q summary and iperf3 -J output", () => {
  const ping = "--- 10.244.2.2 ping statistics ---\n200 packets transmitted, 199 received, 0.5% packet loss, time 1091ms\nrtt min/avg/max/mdev = 0.041/0.063/0.412/0.031 ms\n";
  assert.deepEqual(parsePingSummary(ping), { sent: 200, received: 199, minMs: 0.041, avgMs: 0.063, maxMs: 0.412, mdevMs: 0.031 });
  assert.equal(parsePingSummary("connect: Network is unreachable"), undefined);
  const lines = "64 bytes from 10.244.2.2: icmp_seq=1 ttl=62 time=0.081 ms\n64 bytes from 10.244.2.2: icmp_seq=2 ttl=62 time=1.20 ms\n";
  assert.deepEqual(parsePingTimes(lines), [0.081, 1.2]);
  const iperf = JSON.stringify({ end: { sum_sent: { bits_per_second: 9.1e9, retransmits: 3 }, sum_received: { bits_per_second: 9e9 } } });
  assert.deepEqual(parseIperfJson(iperf), { receivedBps: 9e9, sentBps: 9.1e9, retransmits: 3 });
  assert.throws(() => parseIperfJson(JSON.stringify({ error: "unable to connect to server" })), /unable to connect/);
  assert.throws(() => parseIperfJson("garbage"), /no JSON/);
});
