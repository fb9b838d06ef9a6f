"""The operation engine: send a running operation by its module (what came of it is written in
the books by resellctl.outcomes).

An operation is written (status ``new``) in the same transaction as the service change it asks
for (resellctl.lifecycle). Processing it sends one request upstream; accepted, it becomes
``waiting`` with a linked task; refused, it becomes ``failed`` with the error appended to its
history and no task. Under a manual module nothing is sent: the task is for staff. No
transaction is held while the upstream is asked. What each kind sends, and how to tell that it
happened, is the kind's own (resellctl.kinds); every status change goes through
resellctl.states.

Re-sending is never blind. Each send is marked in the books before it leaves and unmarked
only when it provably did nothing. An order carries a ``remoteid`` of its own, so the upstream
answers ``exists`` instead of creating a second service, and that item is adopted only once
read back and found to be this order's. Any other operation whose earlier attempt may have
reached the upstream (a timeout after sending, a dropped answer) first reads the upstream's
view of the service (``<itemtype>.edit``) and is not sent again when the change is there.
"""

import fcntl
import json
import os

from resellctl import earlier, errors, kinds, outcomes, states
from resellctl.errors import InputError, UpstreamError
from resellctl.outcomes import Outcome
from resellctl.store import now
from resellctl.storefiles import beside, open_private


class Engine:
    """Processes the operations of one store, through ``upstreams`` (the clients of its
    billmanager modules; resellctl.upstream.Upstreams)."""

    def __init__(self, store, upstreams):
        self.store = store
        self.upstreams = upstreams

    # -- processing ----------------------------------------------------------------------------

    def process(self, op_id, deadline=None):
        """Send one operation by its module and record the outcome; never raises UpstreamError.
        ``deadline`` (a ``time.monotonic()`` value): no try starts after it.

        One process at a time sends a given operation (checkevent re-running it for funds while
        an admin starts it must not prolong twice): the others get the status ``busy``.
        """
        op = self.store.operation(op_id)
        claim = claim_operation(self.store.path, op["id"])
        if claim is None:
            return Outcome(op["id"], op["item"], "busy",
                           note="another resellctl process is sending it")
        try:
            return self._process(op["id"], deadline)
        finally:
            os.close(claim)

    def _process(self, op_id, deadline):
        store = self.store
        op = store.operation(op_id)  # read again under the claim: it may be done by now
        if op["status"] not in states.STARTABLE:
            return Outcome(op["id"], op["item"], op["status"], op["task"])
        module = store.module(op["processingmodule"])
        if module["type"] == "manual":
            return outcomes.accepted(self.store, op, module)
        if op["operation"] == "close" and not store.item(op["item"])["upstream_id"]:
            return outcomes.closed_here(self.store, op)
        attempt = _Attempt(op)
        try:
            note, upstream_id = self._send(op, module, attempt, deadline)
        except UpstreamError as error:
            if error.kind == errors.EXISTS and op["operation"] == "open":
                return self._adopt(op, module, error, attempt)
            return outcomes.failed(self.store, op, module, error, attempt.counted)
        return outcomes.accepted(self.store, op, module, upstream_id, note=note)

    def _send(self, op, module, attempt, deadline):
        """Send ``op`` upstream, retrying transient failures (the only retries around it).
        Returns (note, upstream item id for an open).

        A change that an earlier try may have brought upstream is first looked for in the
        upstream's view of the service; a prolongation, being relative, is compared with the
        expiry read before it was first sent.
        """
        client = self.upstreams.client(module)
        item = self.store.item(op["item"])
        request = json.loads(op["params"] or "{}")
        kind = kinds.kind(op["operation"])
        if kind.name != "open" and not item["upstream_id"]:
            raise UpstreamError(errors.PERMANENT,
                                f"service {item['id']} has no upstream item to {kind.name}",
                                type="no_upstream_item",
                                hint="Its order never reached the upstream (see "
                                     f"`resellctl services show {item['id']}`).")

        def once():
            if kind.name == "open" and attempt.reached and not client.dedups_orders:
                # Its answer was lost, and this upstream may make it twice: look first.
                found = earlier.find_order(self.store, client, op, item, request, deadline)
                if found is not None:
                    return found
            if kind.name != "open" and attempt.reached:
                if kind.needs_baseline and attempt.baseline is None:
                    raise earlier.unknown_baseline(op)
                seen = client.edit_read(item["itemtype"], item["upstream_id"], retry=False)
                if kind.shows(seen, request, attempt.baseline):
                    return ("an earlier attempt reached the upstream (it shows "
                            f"{kind.shown(seen)}); not sent again"), None
            elif kind.needs_baseline:
                # Where the upstream stands before the first send; read each time nothing went
                # before, as the upstream may have moved on its own since an earlier try.
                seen = client.edit_read(item["itemtype"], item["upstream_id"], retry=False)
                attempt.baseline = seen.get("expiredate") or ""
            self._sending(op, attempt)
            try:
                upstream_id = kind.send(client, item, request, retry=False)
            except UpstreamError as error:
                self._sent(op, attempt, error)
                raise
            return "", upstream_id if kind.name == "open" else None

        from resellctl.upstream.retries import retried  # tenacity: only where a call is made

        return retried(once, deadline, client.transport.notify)

    def _sending(self, op, attempt):
        """Mark ``op`` as possibly reaching the upstream, committed before the request leaves:
        a process killed while sending leaves it marked."""
        with self.store.write():
            states.sending(self.store.conn, op["id"], attempt.baseline, not attempt.counted,
                           now())
        attempt.counted = True

    def _sent(self, op, attempt, error):
        """After a failed send: one that provably did nothing (refused, or never left) puts the
        mark back as it was before; one that may have arrived keeps it."""
        if error.maybe_sent:
            attempt.reached = True
        elif not attempt.reached:
            with self.store.write():
                states.not_sent(self.store.conn, op["id"])

    def _adopt(self, op, module, error, attempt):
        """An order the upstream says it has already (``exists``, with its item id): adopt that
        item when it is what this operation ordered; otherwise fail, linking nothing.

        The upstream knows the order only by its remoteid. A store restored from a backup or
        copied elsewhere could otherwise take a service of another store (or of another
        customer of this one) for its own, and a later close would delete it.
        """
        upstream_id = error.params.get("id")
        if not upstream_id:
            return outcomes.failed(self.store, op, module, error, attempt.counted)
        try:
            note = earlier.existing_order(self.store, self.upstreams.client(module),
                                          self.store.item(op["item"]), upstream_id)
        except UpstreamError as problem:
            return outcomes.failed(self.store, op, module, problem, attempt.counted)
        return outcomes.accepted(self.store, op, module, upstream_id, note=note)

    def dry_run(self, op_id):
        """The request ``op_id`` would send (password masked): ``{"url", "method", "form"}``,
        or a sentence when it sends none. Sends nothing."""
        op = self.store.operation(op_id)
        module = self.store.module(op["processingmodule"])
        if module["type"] == "manual":
            return "nothing: a manual module makes a task for staff"
        client = self.upstreams.client(module)
        with client.recording() as sent:
            kinds.kind(op["operation"]).send(client, self.store.item(op["item"]),
                                             json.loads(op["params"] or "{}"), retry=False)
        return {"url": module["url"], "method": "POST", "form": sent[0]}

    # -- several at once -----------------------------------------------------------------------

    def start(self, op_ids):
        """Re-run operations in status failed or new; refuse any other with InputError."""
        return list(self.process_many(self.startable(op_ids)))

    def process_many(self, op_ids, deadline=None):
        """Process operations in turn, yielding each Outcome. Once the upstream does not answer,
        the rest are not sent (Outcome ``unsent``, in the status they had): each would only
        wait out its own retries."""
        unreachable = None
        for op_id in op_ids:
            if unreachable is not None:
                op = self.store.operation(op_id)
                yield Outcome(op_id, op["item"], op["status"], op["task"], error=unreachable,
                              unsent=True)
                continue
            outcome = self.process(op_id, deadline)
            if outcome.error is not None and outcome.error.kind == errors.TRANSIENT:
                unreachable = outcome.error
            yield outcome

    def startable(self, op_ids):
        """``op_ids`` when every one is failed or new; else InputError naming the others."""
        ops = [self.store.operation(op_id) for op_id in op_ids]
        refused = [op for op in ops if op["status"] not in states.STARTABLE]
        if refused:
            details = "; ".join(f"operation {op['id']} is {op['status']}" for op in refused)
            raise InputError(f"only failed or new operations can be started: {details}",
                             "A waiting operation completes with its upstream event "
                             "(`resellctl checkevent`); a done one needs nothing.")
        return [op["id"] for op in ops]


class _Attempt:
    """What one processing of an operation knows about its sending, as it goes."""

    def __init__(self, op):
        self.reached = bool(op["reached"])  # an earlier try may have reached the upstream
        self.baseline = op["baseline"]
        self.counted = False  # trycount counted for this processing


def may_have_reached(op):
    """Could an earlier attempt of ``op`` have reached the upstream and done its work there?
    Every send is marked before it leaves and unmarked only when it provably did nothing (a
    refusal, a connection never made); a crash mid-send or a lost answer keeps the mark."""
    return bool(op["reached"])


def claim_operation(store_path, op_id):
    """Lock byte ``op_id`` of ``<store>.sending``; the open descriptor (closing it lets go), or
    None when another process holds it. The kernel lets go when the holder dies."""
    fd = open_private(beside(store_path, ".sending"))
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, op_id)
    except OSError:
        os.close(fd)
        return None
    return fd
