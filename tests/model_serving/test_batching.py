"""The request batcher: concurrent requests share one computation, and each gets its own answer or error."""

import asyncio
import threading

import pytest

from model_serving.batching import RequestBatcher


class Recorder:
    """A compute function that remembers its batches and can be held until released."""

    def __init__(self) -> None:
        self.batches: list[list[list[str]]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, requests: list[list[str]]) -> list[list[str] | Exception]:
        self.release.wait(timeout=10)
        self.batches.append(requests)
        return [KeyError(ids[0]) if ids[0].startswith("bad") else [i.upper() for i in ids] for ids in requests]


async def _submit_while_held(batcher: RequestBatcher[list[str]], recorder: Recorder, requests: list[list[str]]) -> list:
    """The first request starts a batch that is held; the others queue behind it."""
    recorder.release.clear()
    first = asyncio.ensure_future(batcher.submit(requests[0]))
    await asyncio.sleep(0.05)  # the first batch is now computing
    rest = [asyncio.ensure_future(batcher.submit(ids)) for ids in requests[1:]]
    await asyncio.sleep(0.05)
    recorder.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_requests_queued_behind_a_batch_are_computed_together_in_order() -> None:
    recorder = Recorder()
    batcher: RequestBatcher[list[str]] = RequestBatcher(recorder, max_entities=100)
    requests = [["a"], ["b", "c"], ["d"], ["e"]]
    answers = asyncio.run(_submit_while_held(batcher, recorder, requests))
    assert answers == [["A"], ["B", "C"], ["D"], ["E"]]
    assert recorder.batches == [[["a"]], [["b", "c"], ["d"], ["e"]]]


def test_one_requests_error_leaves_the_others_in_its_batch_answered() -> None:
    recorder = Recorder()
    batcher: RequestBatcher[list[str]] = RequestBatcher(recorder, max_entities=100)
    answers = asyncio.run(_submit_while_held(batcher, recorder, [["a"], ["b"], ["bad"], ["c"]]))
    assert answers[:2] == [["A"], ["B"]]
    assert isinstance(answers[2], KeyError)
    assert answers[3] == ["C"]
    assert len(recorder.batches) == 2


def test_a_batch_never_exceeds_the_entity_limit_unless_one_request_alone_does() -> None:
    recorder = Recorder()
    batcher: RequestBatcher[list[str]] = RequestBatcher(recorder, max_entities=3)
    requests = [["a"], ["b", "c"], ["d", "e"], ["f", "g", "h", "i"], ["j"]]
    answers = asyncio.run(_submit_while_held(batcher, recorder, requests))
    assert answers == [[i.upper() for i in ids] for ids in requests]
    assert [sum(map(len, batch)) for batch in recorder.batches] == [1, 2, 2, 4, 1]


def test_a_failing_computation_fails_every_request_of_its_batch_and_the_next_batch_runs() -> None:
    calls: list[int] = []

    def compute(requests: list[list[str]]) -> list[list[str] | Exception]:
        calls.append(len(requests))
        if len(calls) == 1:
            raise ConnectionError("store down")
        return [list(ids) for ids in requests]

    async def scenario() -> tuple[list, list]:
        batcher: RequestBatcher[list[str]] = RequestBatcher(compute, max_entities=10)
        failed = await asyncio.gather(batcher.submit(["a"]), return_exceptions=True)
        return failed, [await batcher.submit(["b"])]

    failed, later = asyncio.run(scenario())
    assert isinstance(failed[0], ConnectionError)
    assert later == [["b"]]


def test_a_request_whose_client_left_is_not_computed() -> None:
    recorder = Recorder()
    batcher: RequestBatcher[list[str]] = RequestBatcher(recorder, max_entities=100)

    async def scenario() -> list[str]:
        recorder.release.clear()
        first = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit(["gone"]))
        kept = asyncio.ensure_future(batcher.submit(["kept"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        recorder.release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(scenario()) == ["KEPT"]
    assert recorder.batches == [[["a"]], [["kept"]]]
