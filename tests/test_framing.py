from actors.cores.framing import Reframer


def test_uneven_deltas_become_exact_frames_with_carry_over() -> None:
    r = Reframer(160)
    audio = bytes(i % 251 for i in range(1000))
    frames = r.push("r1", "i1", audio[:100]) + r.push("r1", "i1", audio[100:700]) + r.push("r1", "i1", audio[700:])
    assert [len(f.payload) for f in frames] == [160] * 6
    assert b"".join(f.payload for f in frames) == audio[:960]
    tail = r.finish("r1")
    assert len(tail) == 1 and tail[0].last
    assert tail[0].payload == audio[960:] + b"\xff" * 120


def test_two_responses_never_share_a_frame() -> None:
    r = Reframer(160)
    first = r.push("r1", "i1", b"\x01" * 200)
    second = r.push("r2", "i2", b"\x02" * 100)
    assert [f.payload for f in first] == [b"\x01" * 160]
    closed = [f for f in second if f.response_id == "r1"]
    assert len(closed) == 1 and closed[0].last and closed[0].payload == b"\x01" * 40 + b"\xff" * 120
    assert all(set(f.payload) <= {2} for f in second if f.response_id == "r2")
    tail = r.finish("r2")
    assert tail[0].payload == b"\x02" * 100 + b"\xff" * 60


def test_finish_without_remainder_yields_end_marker_only() -> None:
    r = Reframer(160)
    frames = r.push("r1", "i1", b"\x05" * 320)
    assert len(frames) == 2
    tail = r.finish("r1")
    assert tail[0].payload == b"" and tail[0].last
    assert r.finish("r1") == []


def test_drop_forgets_a_cut_response() -> None:
    r = Reframer(160)
    r.push("r1", "i1", b"\x05" * 200)
    assert r.drop("r1") == 40
    assert r.finish("r1") == []
