// Entry point of the trellis-ipam executable.
import { processIo } from "../cni/process-io.js";
import { runPlugin } from "../cni/skel.js";
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from "./plugin.js";

process.exitCode = runPlugin(processIo(), {
  about: "trellis-ipam: node-local IPAM for Trellis (host-local compatible store)",
  add: (req) => ipamAdd(req),
  del: (req) => ipamDel(req),
  check: (req) => ipamCheck(req),
  gc: (req) => ipamGc(req),
  status: (req) => ipamStatus(req),
});
