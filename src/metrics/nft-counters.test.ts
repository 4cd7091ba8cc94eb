import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { actionOf, parseRuleCounters, rulesetSize } from "./nft-counters.js";

// As `nft list table inet trellis` prints a table with two pods (abridged).
const LISTING = `table inet trellis {
	chain out_aaa {
		ip saddr != { 10.244.1.2 } drop comment "anti-spoofing"
		ip daddr @pods4_x counter packets 4 bytes 240 drop comment "GlobalTrellisPolicy/dev-not-to-prod egress[0]"
		counter packets 1 bytes 60 goto out_aaa_k8s comment "GlobalTrellisPolicy/dev-not-to-prod egress[1]"
		drop comment "end of ordered tier"
	}
	chain out_aaa_k8s {
		return comment "not isolated"
	}
	chain in_bbb {
		ip saddr @pods4_y counter packets 2 bytes 120 log prefix "trellis TrellisPolicy/prod/audit ingress[0]: " comment "TrellisPolicy/prod/audit ingress[0]"
		goto in_bbb_k8s
	}
	chain in_bbb_k8s {
		ip saddr @k8sany4_bbb_ingress counter packets 5 bytes 300 return comment "allowed on any port"
		ip saddr . meta l4proto . th dport @k8sport4_bbb_ingress counter packets 7 bytes 420 return comment "allowed ports"
		ip6 saddr @k8sany6_bbb_ingress counter packets 0 bytes 0 return comment "allowed on any port"
		counter packets 3 bytes 180 drop comment "isolated by NetworkPolicy/prod/db-from-api, NetworkPolicy/prod/deny-all"
	}
	chain in_ccc {
		ip daddr @pods4_x counter packets 6 bytes 360 drop comment "GlobalTrellisPolicy/dev-not-to-prod egress[0]"
	}
	chain in_ccc_k8s {
		counter packets 10 bytes 600 drop comment "isolated by NetworkPolicy/prod/deny-all"
	}
}
`;

describe("policy rule counters from the nft listing", () => {
  test("each policy rule's counters, summed over its nft rules and pods, with the action", () => {
    assert.deepEqual(parseRuleCounters(LISTING), [
      { policy: "GlobalTrellisPolicy/dev-not-to-prod", rule: "egress[0]", action: "deny", packets: 10, bytes: 600 },
      { policy: "GlobalTrellisPolicy/dev-not-to-prod", rule: "egress[1]", action: "pass", packets: 1, bytes: 60 },
      { policy: "NetworkPolicy/prod/db-from-api, NetworkPolicy/prod/deny-all", rule: "ingress allowed", action: "allow", packets: 12, bytes: 720 },
      { policy: "NetworkPolicy/prod/db-from-api, NetworkPolicy/prod/deny-all", rule: "ingress isolated", action: "deny", packets: 3, bytes: 180 },
      { policy: "NetworkPolicy/prod/deny-all", rule: "ingress isolated", action: "deny", packets: 10, bytes: 600 },
      { policy: "TrellisPolicy/prod/audit", rule: "ingress[0]", action: "log", packets: 2, bytes: 120 },
    ]);
  });

  test("rules without a counter or a known comment, and an empty table, give nothing", () => {
    assert.deepEqual(parseRuleCounters(""), []);
    assert.deepEqual(parseRuleCounters('chain forward {\n counter packets 9 bytes 9 drop comment "fail closed: endpoint not programmed yet"\n}'), []);
  });

  test("verdict -> action", () => {
    assert.equal(actionOf("counter packets 0 bytes 0 drop"), "deny");
    assert.equal(actionOf("counter packets 0 bytes 0 return"), "allow");
    assert.equal(actionOf("counter packets 0 bytes 0 goto x"), "pass");
    assert.equal(actionOf('counter packets 0 bytes 0 log prefix "a drop"'), "log");
  });

  test("ruleset size: rules over chains, elements over sets", () => {
    assert.deepEqual(rulesetSize({ sets: [{ elements: [1, 2] }, { elements: [3] }], chains: [{ rules: [1] }, { rules: [1, 2, 3] }] }), { rules: 4, elements: 3 });
  });
});
