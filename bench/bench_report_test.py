#!/usr/bin/env python3
"""Checks of bench.py's pure report logic on canned results (no server, no
measurement): rounds, medians, targets, the verdict and the exit status.
Run by `make test` (t/run-all.sh) and by `python3 bench/bench_report_test.py`."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

BROADCAST = next(w for w in bench.WORKLOADS if w.name == "broadcast")
PAGED = next(w for w in bench.WORKLOADS if w.name == "broadcast_paced")


def rnd(key, p99, lost=0, cdf=None):
    return {"deliveries_per_cpu_s": key, "latency_p99_ms": p99, "lost": lost,
            "latency_cdf": cdf or [[key, 1.0]], "wall_s": 10}


def server_results(module, nchan, floor=None, plain=None):
    row = {"module": module, "nchan": nchan}
    if floor is not None:
        row["floor"] = floor
    if plain is not None:
        row["plain"] = plain
    return row


def all_met_results():
    """Results for which every target is met."""
    p = bench.PROFILES["quick"]
    fan = lambda d, p99: {"deliveries_per_cpu_s": d, "latency_p99_ms": p99,  # noqa: E731
                          "all_delivered_s": 1.0, "publish_rps": 100.0, "non_2xx": 0}
    pub = lambda rps, cpu, p99: {"rps": rps, "rps_per_cpu_s": cpu,  # noqa: E731
                                 "publish_p99_ms": p99, "non_2xx": 0}
    tok = lambda how, p99, d: {"publishing": how, "latency_p50_ms": p99 / 4,  # noqa: E731
                               "latency_p99_ms": p99, "deliveries_per_cpu_s": d,
                               "tokens_per_s": 1000.0, "non_2xx": 0, "lost": 0,
                               "duplicates": 0, "reordered": 0, "closed": 0}
    post, stream = "one POST per token", "streaming POST per channel"
    return {
        "broadcast": server_results(fan(200, 10), fan(100, 40), fan(210, 50)),
        "broadcast_paced": server_results(fan(200, 10), fan(100, 40), fan(210, 50)),
        "many_channels": server_results(fan(200, 10), fan(100, 40), fan(210, 50)),
        "many_channels_paced": server_results(fan(200, 5), fan(100, 20), fan(210, 6)),
        "publish_0": server_results(pub(1500, 1500, 1), pub(1000, 1000, 2), pub(1600, 1600, 1),
                                    pub(1600, 1600, 1)),
        "publish_0_paced": server_results(pub(10000, 10000, 0.5), pub(10000, 10000, 1),
                                          pub(10000, 10000, 0.4), pub(10000, 10000, 0.4)),
        "publish_10": server_results(pub(1000, 1000, 1), pub(900, 900, 2), pub(1000, 1000, 1)),
        "publish_10_paced": server_results(pub(3000, 3000, 0.5), pub(3000, 3000, 1),
                                           pub(3000, 3000, 0.6)),
        "idle_memory": server_results({"bytes_per_sub": 1000.0}, {"bytes_per_sub": 10000.0}),
        "held": server_results({"probe_received": p.held_subs, "non_2xx": 0}, None),
        "storm": server_results({"completion_p99_ms": 10.0, "non_2xx": 0},
                                {"completion_p99_ms": 20.0, "non_2xx": 0}),
        "replay_storm": server_results({"caught_up": p.replay_clients, "rss_growth_mib": 20.0,
                                        "rss_bound_mib": 44.5, "non_2xx": 0}, None),
        "tokens_post": server_results(tok(post, 4, 300), tok(post, 10, 100), tok(post, 5, 310)),
        "tokens_stream": server_results(tok(stream, 3, 400), tok(post, 10, 100)),
        "tokens_post_many": server_results(tok(post, 4, 300), tok(post, 10, 100),
                                           tok(post, 5, 310)),
        "tokens_stream_many": server_results(tok(stream, 3, 400), tok(post, 10, 100)),
        "auth": server_results({"storm_ratio_es256": 1.2, "non_2xx": 0}, None),
        "crossnode": server_results(fan(300, 12), fan(100, 40)),
        "crossnode_single": server_results(fan(310, 8), None),
        "redis_publish": server_results({"rps": 5000.0, "of_redis_benchmark": 0.2,
                                         "non_2xx": 0}, {"rps": 4000.0, "non_2xx": 0}),
    }


def strip_none(results):
    return {w: {k: r for k, r in row.items() if r is not None} for w, row in results.items()}


class Median(unittest.TestCase):
    def test_odd_and_even(self):
        self.assertEqual(bench.median([3, 1, 2]), 2)
        self.assertEqual(bench.median([4, 1, 3, 2]), 2.5)   # the mean of the middle two
        self.assertEqual(bench.median([5, 1]), 3)
        self.assertIsNone(bench.median([]))


class PickRound(unittest.TestCase):
    def test_median_p99_not_the_p99_of_the_median_round(self):
        # the median-throughput round (200) has p99 90; the median p99 is 20
        rounds = [rnd(100, 10), rnd(200, 90), rnd(300, 20)]
        r = bench.pick_round(BROADCAST, rounds)
        self.assertEqual(r["deliveries_per_cpu_s"], 200)
        self.assertEqual(r["latency_p99_ms"], 20)
        self.assertEqual(r["rounds"], [100, 200, 300])
        self.assertEqual(r["latency_cdf"], [[200, 1.0]], "plots: the median key round")

    def test_even_rounds_take_the_mean(self):
        r = bench.pick_round(BROADCAST, [rnd(100, 10), rnd(300, 30)])
        self.assertEqual(r["deliveries_per_cpu_s"], 200)
        self.assertEqual(r["latency_p99_ms"], 20)

    def test_failures_are_the_worst_round(self):
        r = bench.pick_round(BROADCAST, [rnd(100, 10), rnd(200, 10, lost=5), rnd(300, 10)])
        self.assertEqual(r["lost"], 5)

    def test_a_failed_round_is_kept(self):
        r = bench.pick_round(BROADCAST, [rnd(100, 10), {"error": "boom"}, rnd(300, 10)])
        self.assertEqual(r["round_errors"], ["boom"])
        self.assertEqual(r["deliveries_per_cpu_s"], 200)
        r = bench.pick_round(PAGED, [{"error": "boom"}])
        self.assertEqual(r["error"], "boom")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


class RunAll(unittest.TestCase):
    def test_every_server_gets_the_same_rounds(self):
        clock = FakeClock()
        real = bench.time.monotonic
        bench.time.monotonic = clock.monotonic
        calls = []

        def measure(_bench, w, kind):
            calls.append((w.name, kind))
            clock.now += 40
            return {"deliveries_per_cpu_s": 1.0, "wall_s": 40}

        class FakeBench:
            profile = bench.Profile(**{**bench.PROFILES["full"].__dict__,
                                       "rounds": 3, "budget_s": 200})
        try:
            out = bench.run_all(FakeBench(), ["module", "nchan", "floor"], {"broadcast"},
                                measure=measure)
        finally:
            bench.time.monotonic = real
        # round 1: 120 s; round 2 needs 120 more: 240 > 200, so no server gets it
        # (the old per-server check gave module and nchan a second round)
        counts = {k: sum(1 for c in calls if c[1] == k) for k in ("module", "nchan", "floor")}
        self.assertEqual(counts, {"module": 1, "nchan": 1, "floor": 1})
        self.assertEqual(set(out["broadcast"]), {"module", "nchan", "floor"})


class AuthTarget(unittest.TestCase):
    def test_a_module_error_is_not_met(self):
        rows = bench.auth_targets({"auth": {"module": {"error": "boom"}}})
        self.assertEqual([met for _, _, met in rows], [False])

    def test_the_bound(self):
        for ratio, met in ((1.49, True), (1.51, False)):
            rows = bench.auth_targets({"auth": {"module": {"storm_ratio_es256": ratio}}})
            self.assertEqual([m for _, _, m in rows], [met])


class Targets(unittest.TestCase):
    def rows(self, results):
        return {label: (measured, met) for label, measured, met in
                bench.targets(strip_none(results), bench.PROFILES["quick"])}

    def test_all_met(self):
        rows = self.rows(all_met_results())
        self.assertTrue(all(met is True for _, met in rows.values()), rows)

    def test_a_p99_target_for_every_workload_with_a_tail(self):
        labels = [lb.lstrip("… ") for lb in self.rows(all_met_results())]
        for what in ("(broadcast)", "(broadcast, paced)", "(many channels)",
                     "(publish, no subscribers)", "(publish, 10 subscribers per channel)",
                     "(reconnect storm)", "(tokens, 200 channels, one POST per token)",
                     "(tokens, 1,000 channels, one POST per token)",
                     "(tokens, 200 channels, streaming POST; nchan: one POST per token)",
                     "(tokens, 1,000 channels, streaming POST; nchan: one POST per token)"):
            self.assertTrue(any(lb.startswith("p99") and lb.endswith(what) for lb in labels), what)

    def test_crossnode_targets(self):
        res = all_met_results()
        rows = self.rows(res)
        self.assertEqual(rows["p99 publish→receive cross-node ≤ 2× the same on one node"],
                         ("1.50×", True))
        res["crossnode"]["module"]["latency_p99_ms"] = 17.0     # 2.125 x one node's 8
        rows = self.rows(res)
        self.assertEqual(rows["p99 publish→receive cross-node ≤ 2× the same on one node"],
                         ("2.12×", False))
        self.assertEqual(rows["p99 publish→receive ≤ 0.5× nchan with Redis (cross-node)"],
                         ("0.42×", True))
        res["crossnode"]["module"] = {"error": "no redis"}
        rows = self.rows(res)
        self.assertEqual(rows["deliveries per CPU-second ≥ 1.5× nchan with Redis (cross-node)"],
                         ("error", False))

    def test_a_module_error_is_not_met(self):
        res = all_met_results()
        res["many_channels"]["module"] = {"error": "nginx did not start"}
        rows = self.rows(res)
        self.assertEqual(rows["p99 publish→receive ≤ 0.5× nchan's (many channels)"],
                         ("error", False))
        self.assertEqual(rows["deliveries per CPU-second ≥ 1.5× nchan (many channels)"],
                         ("error", False))

    def test_an_other_server_error_is_not_measured_but_fails_the_run(self):
        res = all_met_results()
        res["storm"]["nchan"] = {"error": "nchan crashed"}
        rows = bench.targets(strip_none(res), bench.PROFILES["quick"])
        self.assertIn(("p99 time to catch up per client ≤ nchan's (reconnect storm)", "–", None),
                      rows)
        self.assertIn("storm/nchan: failed: nchan crashed", bench.failures(strip_none(res), rows))

    def test_replay_storm_memory_bound(self):
        res = strip_none(all_met_results())
        label = ("reconnect storm with sse_replay all: the workers' RSS grows less than "
                 "clients × sse_max_pending + 32 MiB "
                 "(44.5 MiB)")
        self.assertEqual(self.rows(res)[label], ("20.0 MiB", True))
        res["replay_storm"]["module"]["rss_growth_mib"] = 45.0
        self.assertEqual(self.rows(res)[label], ("45.0 MiB", False))
        self.assertIn(f"target not met: {label} (measured 45.0 MiB)",
                      bench.failures(res, bench.targets(res, bench.PROFILES["quick"])))
        res["replay_storm"]["module"]["caught_up"] = 199
        rows = self.rows(res)
        self.assertEqual(rows["reconnect storm with sse_replay all: all 200 clients get all 200 "
                              "events of 4,096 B"], ("199", False))

    def test_many_channels_tail(self):
        res = all_met_results()
        res["many_channels"]["module"]["latency_p99_ms"] = 166.0   # 4.15 x nchan's 40
        rows = self.rows(res)
        self.assertEqual(rows["p99 publish→receive ≤ 0.5× nchan's (many channels)"],
                         ("4.15× (floor: 1.25×)", False))
        res["many_channels"]["module"]["latency_p99_ms"] = 24.0    # below nchan's, above half
        rows = self.rows(res)
        self.assertEqual(rows["p99 publish→receive ≤ 0.5× nchan's (many channels)"],
                         ("0.60× (floor: 1.25×)", False))
        del res["many_channels"]["floor"]   # no floor measured: the bare ratio
        rows = self.rows(res)
        self.assertEqual(rows["p99 publish→receive ≤ 0.5× nchan's (many channels)"],
                         ("0.60×", False))

    def test_many_channels_tail_says_what_bounds_it(self):
        res = strip_none(all_met_results())
        res["many_channels"]["module"].update(latency_p99_ms=166.0, server_flush_p99_le_ms=25.0,
                                              host_busy_share=0.99)
        profile = bench.PROFILES["quick"]
        rows = bench.targets(res, profile)
        info = {"nproc": 2, "background_cpu_share": 0.05}
        text = "\n".join(bench.unmet_reasons(res, rows, info, profile))
        self.assertIn("floor ÷ nchan 1.25×", text)            # the floor's 50 ms over nchan's 40
        self.assertIn("had a p99 of at most 25.0 ms", text)     # the module's own histogram
        self.assertIn("busy 99% (module)", text)
        self.assertIn("p99 module 5 ms, nchan 20 ms, floor 6 ms (module ÷ nchan 0.25×)", text)

    def test_tokens_tail_is_half_of_nchans(self):
        res = all_met_results()
        res["tokens_stream_many"]["module"]["latency_p99_ms"] = 6.0   # 0.6 x nchan's 10
        rows = self.rows(res)
        label = ("p99 publish→receive ≤ 0.5× nchan's "
                 "(tokens, 1,000 channels, streaming POST; nchan: one POST per token)")
        self.assertEqual(rows[label], ("0.60×", False))
        res["tokens_stream_many"]["module"]["latency_p99_ms"] = 5.0
        self.assertEqual(self.rows(res)[label], ("0.50×", True))

    def test_tokens_cpu_is_for_reference(self):
        res = strip_none(all_met_results())
        res["tokens_post"]["module"]["deliveries_per_cpu_s"] = 120   # 1.2 x nchan's
        rows = bench.targets(res, bench.PROFILES["quick"])
        cpu = [r for r in rows if r[0] == "… deliveries per CPU-second ≥ 1.5× nchan "
               "(tokens, 200 channels, one POST per token)"]
        self.assertEqual(cpu, [(cpu[0][0], "1.20×", False)])
        self.assertEqual(bench.failures(res, rows), [])


class Tokens(unittest.TestCase):
    def test_tokens_per_channel_keep_the_total_rate(self):
        full = bench.PROFILES["full"]
        self.assertEqual(bench.tokens_per_channel(full, 1000), 48)   # 4000/s x 12 s / 1000
        self.assertEqual(bench.tokens_per_channel(full, 5000), 10)   # 9.6, rounded
        self.assertEqual(bench.tokens_per_channel(
            bench.Profile(**{**full.__dict__, "tokens_seconds": 0.1}), 5000), 1)

    def test_titles_carry_the_profiles_counts(self):
        w = next(x for x in bench.WORKLOADS if x.name == "tokens_post_many")
        self.assertEqual(bench.title_of(w, bench.PROFILES["full"]),
                         "tokens, 5,000 channels, one POST per token")

    def test_streaming_rows_say_how_nchan_published(self):
        table = bench.results_table(strip_none(all_met_results()), ["module", "nchan", "floor"],
                                    bench.PROFILES["full"])
        row = next(line for line in table.splitlines()
                   if line.startswith("| tokens, 1,000 channels, streaming POST | how tokens"))
        self.assertIn("| streaming POST per channel | one POST per token |", row)

    def test_unmet_reasons_quote_the_tokens_run(self):
        res = strip_none(all_met_results())
        res["tokens_stream"]["module"]["latency_p99_ms"] = 87.5
        res["tokens_stream"]["nchan"]["tokens_per_s"] = 765.0
        profile = bench.PROFILES["quick"]
        rows = bench.targets(res, profile)
        text = "\n".join(bench.unmet_reasons(res, rows, {"nproc": 3, "background_cpu_share": 0.4},
                                              profile))
        for measured in ("87.5 ms", "nchan 10 ms", "publishing one POST per token", "765",
                         "asked: 1000", "3 cores", "40%"):
            self.assertIn(measured, text)

    def test_a_paced_row_says_who_did_not_keep_the_pace(self):
        res = strip_none(all_met_results())
        res["publish_10"]["module"]["publish_p99_ms"] = 3.0     # unmet: quoted with its paced row
        profile = bench.PROFILES["quick"]
        res["publish_10_paced"]["nchan"]["rps"] = 0.8 * profile.rate_10_paced
        rows = bench.targets(res, profile)
        text = "\n".join(bench.unmet_reasons(res, rows, {"nproc": 2, "background_cpu_share": 0},
                                              profile))
        self.assertIn(f"Paced at {profile.rate_10_paced:,.0f} publishes/s", text)
        self.assertIn("not kept up with: nchan reached 2,400", text)
        self.assertNotIn("module reached", text)


class Integrity(unittest.TestCase):
    def test_a_lost_or_reordered_token_fails_whoever_lost_it(self):
        res = strip_none(all_met_results())
        res["tokens_post_many"]["nchan"]["lost"] = 2
        res["tokens_stream"]["module"]["reordered"] = 1
        rows = bench.targets(res, bench.PROFILES["quick"])
        self.assertEqual(bench.failures(res, rows),
                         ["tokens_stream/module: 1 events reordered",
                          "tokens_post_many/nchan: 2 events lost"])


class Verdict(unittest.TestCase):
    def test_reference_rows_do_not_fail(self):
        res = strip_none(all_met_results())
        res["broadcast_paced"]["module"]["latency_p99_ms"] = 39.0   # 0.98x nchan: > 1/3
        rows = bench.targets(res, bench.PROFILES["quick"])
        paced = [r for r in rows if r[0].endswith("(broadcast, paced)")]
        self.assertEqual([r[2] for r in paced], [False])
        self.assertEqual(bench.failures(res, rows), [])
        self.assertIn("for reference: not met", bench.targets_table(rows))

    def test_non_2xx_fails(self):
        res = strip_none(all_met_results())
        res["publish_0"]["module"]["non_2xx"] = 3
        res["publish_0"]["module"]["publish_status"] = {"201": 10, "500": 3}
        rows = bench.targets(res, bench.PROFILES["quick"])
        self.assertEqual(bench.failures(res, rows),
                         ["publish_0/module: 3 publishes answered other than 2xx "
                          "({'201': 10, '500': 3})"])

    def test_unmet_reasons_only_quote_the_run(self):
        res = strip_none(all_met_results())
        res["broadcast"]["module"]["latency_p99_ms"] = 123.4
        rows = bench.targets(res, bench.PROFILES["quick"])
        info = {"nproc": 7, "background_cpu_share": 0.25}
        text = "\n".join(bench.unmet_reasons(res, rows, info, bench.PROFILES["quick"]))
        for measured in ("123.4 ms", "nchan 40 ms", "floor server 50 ms", "7 cores", "25%"):
            self.assertIn(measured, text)
        for fixed in ("half", "few percent", "2 cores", "perf"):
            self.assertNotIn(fixed, text)

    def test_exit_status_of_a_report(self):
        """bench.py --from-json: 0 when all is met, 1 (and why) otherwise."""
        info = {"nproc": 2, "cpu": "x", "kernel": "k", "memory_gib": 1, "open_files": 1,
                "nginx": "n", "nchan": "c", "date": "d", "module_build": None,
                "background_cpu_share": 0.0}
        script = Path(bench.__file__)
        with tempfile.TemporaryDirectory() as tmp:
            for results, want in ((strip_none(all_met_results()), 0), (None, 1)):
                if results is None:
                    results = strip_none(all_met_results())
                    results["publish_10"]["module"]["publish_p99_ms"] = 9.0
                out = {"profile": "quick", "servers": ["module", "nchan", "floor", "plain"],
                       "machine": info, "results": results, "log_problems": {},
                       "seconds": 1.0}
                path = Path(tmp) / "results.json"
                path.write_text(json.dumps(out))
                report = Path(tmp) / "report.md"
                run = subprocess.run([sys.executable, str(script), "--from-json", str(path),
                                      "--report", str(report)],
                                     capture_output=True, text=True)
                self.assertEqual(run.returncode, want, run.stdout + run.stderr)
                text = report.read_text()
                self.assertIn("## Verdict", text)
                if want:
                    self.assertIn("bench: FAIL: target not met: p99 publish round trip ≤ "
                                  "nchan's (publish, 10 subscribers per channel)", run.stdout)
                    self.assertIn("The run **fails**", text)


if __name__ == "__main__":
    unittest.main(verbosity=1)
