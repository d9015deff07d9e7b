"""bandwidth without a kernel: config parsing, the TBF arithmetic, ifb names, the no-op paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pycni.net.tc import MAX_TBF_RATE_BITS, TbfParams, tbf_params
from pycni.plugins.bandwidth.conf import BandwidthConf, Limit, ifb_name, parse_conf
from pycni.registry import load_plugin
from pycni.skel import dispatch
from pycni.spec.errors import InvalidConfig

PLUGIN = load_plugin("bandwidth")

REPO_ROOT = Path(__file__).resolve().parents[2]
TICK = 15.625  # psched ticks per microsecond on current kernels (/proc/net/psched: 1000 64 ...)


# -- parse_conf ----------------------------------------------------------------


def test_no_values_is_zero() -> None:
    assert parse_conf({"type": "bandwidth"}).is_zero
    assert parse_conf({"ingressRate": 0, "ingressBurst": 0, "runtimeConfig": {"bandwidth": {}}}).is_zero


def test_top_level_values() -> None:
    conf = parse_conf({"ingressRate": 8000, "ingressBurst": 16000, "egressRate": 1000, "egressBurst": 800})
    assert conf == BandwidthConf(ingress=Limit(8000, 16000), egress=Limit(1000, 800))


def test_keys_match_case_insensitively_like_go() -> None:
    assert parse_conf({"IngressRate": 8000, "ingressburst": 16000}).ingress == Limit(8000, 16000)


def test_capability_alone() -> None:
    conf = parse_conf({"runtimeConfig": {"bandwidth": {"egressRate": 1_000_000, "egressBurst": 2_000_000}}})
    assert conf == BandwidthConf(ingress=None, egress=Limit(1_000_000, 2_000_000))


def test_capability_overrides_the_config_per_direction() -> None:
    conf = parse_conf(
        {
            "ingressRate": 1000,
            "ingressBurst": 1000,
            "egressRate": 2000,
            "egressBurst": 2000,
            "runtimeConfig": {"bandwidth": {"ingressRate": 5000, "ingressBurst": 6000, "egressRate": 0}},
        }
    )
    assert conf.ingress == Limit(5000, 6000)  # the runtime's
    assert conf.egress == Limit(2000, 2000)  # left at zero by the runtime: the config's


def test_kubelet_style_burst_is_accepted() -> None:
    # kubelet/containerd send 2^31-1 bits as "no burst limit".
    conf = parse_conf({"runtimeConfig": {"bandwidth": {"ingressRate": 1_000_000, "ingressBurst": 2**31 - 1}}})
    assert conf.ingress == Limit(1_000_000, 2**31 - 1)


def test_reverted_subnet_options_are_ignored_like_the_reference() -> None:
    conf = parse_conf({"ingressRate": 8000, "ingressBurst": 8000, "unshapedSubnets": ["10.0.0.0/8"]})
    assert conf.ingress == Limit(8000, 8000)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ingressRate": 1000}, r"ingressBurst: must be set \(to bits > 0\) when ingressRate is set"),
        ({"ingressBurst": 1000}, r"ingressRate: must be set \(to bits/s > 0\) when ingressBurst is set"),
        ({"egressRate": 1000, "egressBurst": 0}, "egressBurst: must be set"),
        ({"egressRate": -1, "egressBurst": 8}, "egressRate: expected a non-negative integer, got -1"),
        ({"egressRate": True, "egressBurst": 8}, "egressRate: expected a non-negative integer, got True"),
        ({"egressRate": 8.0, "egressBurst": 8}, "egressRate: expected a non-negative integer, got 8.0"),
        ({"egressRate": "1M", "egressBurst": 8}, "egressRate: expected a non-negative integer"),
        ({"ingressRate": 7, "ingressBurst": 8}, "ingressRate: 7 bits/s is less than one byte per second"),
        ({"ingressRate": 8, "ingressBurst": 7}, "ingressBurst: 7 bits is less than one byte"),
        ({"ingressRate": MAX_TBF_RATE_BITS + 1, "ingressBurst": 8}, "ingressRate: .* more than the kernel's TBF"),
        ({"ingressRate": 8, "ingressBurst": 8 * 0xFFFFFFFF}, "ingressBurst: burst cannot be more than 4GB"),
        ({"runtimeConfig": []}, "runtimeConfig: expected an object"),
        ({"runtimeConfig": {"bandwidth": 5}}, r"runtimeConfig\.bandwidth: expected an object"),
        (
            {"runtimeConfig": {"bandwidth": {"ingressRate": 1000}}},
            r"runtimeConfig\.bandwidth\.ingressBurst: must be set .* when runtimeConfig\.bandwidth\.ingressRate",
        ),
        # A bad config value is an error even when the runtime overrides that direction.
        ({"egressRate": 8, "runtimeConfig": {"bandwidth": {"egressRate": 8, "egressBurst": 8}}}, "^egressBurst"),
    ],
)
def test_invalid_values_name_their_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        parse_conf(config)


def test_largest_values_are_accepted() -> None:
    conf = parse_conf({"ingressRate": MAX_TBF_RATE_BITS, "ingressBurst": 8 * 0xFFFFFFFF - 1})
    assert conf.ingress == Limit(MAX_TBF_RATE_BITS, 8 * 0xFFFFFFFF - 1)


# -- ifb names -----------------------------------------------------------------


def test_ifb_name_is_deterministic_and_fits_ifnamsiz() -> None:
    name = ifb_name("net", "abc123", "eth0")
    assert name == ifb_name("net", "abc123", "eth0")
    assert len(name) == 15 and name.startswith("bwp") and all(c in "0123456789abcdef" for c in name[3:])


def test_ifb_name_differs_per_network_container_and_ifname() -> None:
    names = {
        ifb_name("net", "abc", "eth0"),
        ifb_name("net", "abc", "net1"),
        ifb_name("net2", "abc", "eth0"),
        ifb_name("net", "abd", "eth0"),
        ifb_name("ne", "tabc", "eth0"),  # no ambiguity from plain concatenation
    }
    assert len(names) == 5


# -- TBF arithmetic --------------------------------------------------------------


def test_tbf_params_of_a_typical_limit() -> None:
    # 20 Mbit/s, 1 Mbit burst: 2.5 MB/s, 125 kB = 50 ms = 781250 ticks, limit 25 ms of rate + burst.
    assert tbf_params(20_000_000, 1_000_000, tick_in_usec=TICK) == TbfParams(
        rate=2_500_000, burst=125_000, buffer=781_250, limit=62_500 + 125_000
    )


def test_bits_round_down_to_bytes_like_the_reference() -> None:
    assert tbf_params(8007, 8015, tick_in_usec=TICK) == tbf_params(8000, 8008, tick_in_usec=TICK)
    assert tbf_params(8007, 8015, tick_in_usec=TICK).rate == 1000


def test_buffer_matches_tc_and_pyroute2() -> None:
    pyroute2_common = pytest.importorskip("pyroute2.netlink.rtnl.tcmsg.common")
    for rate_bits, burst_bits in [(1_000_000, 8_000), (123_456_789, 987_654), (64_000, 1_000_000), (8, 8)]:
        params = tbf_params(rate_bits, burst_bits, tick_in_usec=pyroute2_common.tick_in_usec)
        assert params.buffer == pyroute2_common.calc_xmittime(params.rate, params.burst)


def test_reference_formula_for_ordinary_values() -> None:
    # The Go plugin: buffer = uint32(uint32(burst*1e6/rate) * tick), limit = uint32(rate*25000/1e6) + burst.
    rate, burst = 1_250_000, 100_000  # bytes
    params = tbf_params(rate * 8, burst * 8, tick_in_usec=TICK)
    assert params.buffer == int(int(burst * 1e6 / rate) * TICK)
    assert params.limit == int(rate * 25_000 / 1e6) + burst


def test_a_burst_beyond_the_u32_buffer_is_capped_not_wrapped() -> None:
    # 1 Mbit/s with kubelet's 2^31-1 bit burst: 2147 s of burst, the kernel holds at most ~275 s.
    params = tbf_params(1_000_000, 2**31 - 1, tick_in_usec=TICK)
    assert params.buffer <= 0xFFFFFFFF
    assert params.buffer > 0xFFFFFFFF - 1_000 * TICK  # the cap, not a wrapped-around small value
    assert params.burst == int(0xFFFFFFFF / TICK) * 125_000 // 1_000_000
    assert params.limit == 3_125 + params.burst


def test_limit_is_capped_at_u32() -> None:
    params = tbf_params(MAX_TBF_RATE_BITS, 8 * 0xFFFFFFFF - 1, tick_in_usec=TICK)
    assert params.limit == 0xFFFFFFFF
    assert params.buffer <= 0xFFFFFFFF


def test_less_than_a_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 8 bits"):
        tbf_params(7, 8, tick_in_usec=TICK)


# -- the plugin without a kernel -------------------------------------------------------


PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "veth1", "mac": "aa:bb:cc:dd:ee:01"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1}],
}
ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def call(command: str, config: dict[str, Any]) -> tuple[int, Any]:
    conf = {"cniVersion": "1.0.0", "name": "bw", "type": "bandwidth", **config}
    outcome = dispatch(PLUGIN, {**ENV, "CNI_COMMAND": command}, json.dumps(conf).encode())
    return outcome.exit_code, json.loads(outcome.stdout) if outcome.stdout else None


def test_add_without_limits_passes_the_result_through() -> None:
    code, out = call("ADD", {"prevResult": PREV})
    assert code == 0
    assert out == PREV


def test_add_without_prev_result_is_a_config_error() -> None:
    code, out = call("ADD", {"ingressRate": 8000, "ingressBurst": 8000})
    assert code == 1 and out["code"] == 7
    assert out["msg"] == "prevResult: missing; bandwidth must be called as a chained plugin"


def test_bad_value_is_code_7() -> None:
    code, out = call("ADD", {"egressRate": 8000, "prevResult": PREV})
    assert (code, out["code"]) == (1, 7)
    assert out["msg"].startswith("egressBurst:")


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_versions_before_0_3_0_are_refused(version: str) -> None:
    conf = {"cniVersion": version, "name": "bw", "type": "bandwidth"}
    outcome = dispatch(PLUGIN, {**ENV, "CNI_COMMAND": "ADD"}, json.dumps(conf).encode())
    assert json.loads(outcome.stdout)["code"] == 1
    assert PLUGIN.versions[0] == "0.3.0"


def test_check_without_limits_succeeds_without_touching_the_kernel() -> None:
    assert call("CHECK", {"prevResult": PREV}) == (0, None)


def test_importing_the_plugin_does_not_import_pyroute2() -> None:
    code = "import sys, pycni.plugins.bandwidth; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "False"
