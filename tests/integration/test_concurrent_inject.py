"""8 concurrent `inject` processes, 25 messages each: every one gets a
distinct queue ID and every message is in the queue, intact."""
import concurrent.futures
import re

WORKERS = 8
PER_WORKER = 25


def test_concurrent_inject_distinct_ids_none_lost(mx):
    def worker(w):
        out = []
        for i in range(PER_WORKER):
            msg = ("Subject: %d/%d\n\nworker %d message %d\n" % (
                w, i, w, i)).encode()
            p = mx.run("inject", "-f", "w%d@example.org" % w,
                       "r%d.%d@example.test" % (w, i), input=msg)
            assert p.returncode == 0, p.stderr
            out.append((p.stdout.decode().strip(), w, i))
        return out

    with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
        results = [r for rs in ex.map(worker, range(WORKERS)) for r in rs]

    ids = [r[0] for r in results]
    assert all(re.fullmatch(r"[0-9A-Z]{17}", i) for i in ids)
    assert len(set(ids)) == WORKERS * PER_WORKER

    objs = mx.status_json()
    assert sorted(o["id"] for o in objs) == sorted(ids)
    assert [o["id"] for o in objs] == sorted(ids)     # arrival order
    by_id = {o["id"]: o for o in objs}
    for qid, w, i in results:
        o = by_id[qid]
        assert o["sender"] == "w%d@example.org" % w
        assert [r["addr"] for r in o["recipients"]] == [
            "r%d.%d@example.test" % (w, i)]
    # Spot-check bodies: each message holds its own text.
    for qid, w, i in results[::23]:
        raw = mx.run("status", "-b", qid, check=True).stdout
        assert raw.endswith(("worker %d message %d\r\n" % (w, i)).encode())
