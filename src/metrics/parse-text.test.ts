import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parsePrometheusText, sampleSum } from "./parse-text.js";

describe("Prometheus text format reader", () => {
  test("samples with and without labels; comments skipped; escapes; special values", () => {
    const s = parsePrometheusText([
      "# HELP x_total things",
      "# TYPE x_total counter",
      'x_total{a="1",b="say \\"hi\\"\\\\ \\n"} 3',
      "y 0.5 1700000000000",
      'z_bucket{le="+Inf"} +Inf',
      "",
    ].join("\n"));
    assert.deepEqual(s, [
      { name: "x_total", labels: { a: "1", b: 'say "hi"\\ \n' }, value: 3 },
      { name: "y", labels: {}, value: 0.5 },
      { name: "z_bucket", labels: { le: "+Inf" }, value: Infinity },
    ]);
    assert.equal(sampleSum(s, "x_total", { a: "1" }), 3);
    assert.equal(sampleSum(s, "x_total", { a: "2" }), 0);
  });

  test("a malformed line is an error naming the line", () => {
    assert.throws(() => parsePrometheusText("ok 1\n{a=\"b\"} 2"), /metrics line 2: no metric name/);
    assert.throws(() => parsePrometheusText('x{a="b} 1'), /line 1: unterminated label value/);
    assert.throws(() => parsePrometheusText("x abc"), /line 1: bad value/);
  });
});
