"""Device pull-sync: every record under a device's grid prefixes, then the
changes since (docs/protocol.md, "Device pull-sync").

The first pull takes the snapshot pages and then the deltas after the
first page's snapshot_seq, applied by version; a later pull given the
previous result syncs the deltas only. A store restored from a backup or
replaced meanwhile (another store_epoch, or a head below our position)
raises LineageChanged: drop what you hold and pull again from scratch.
"""

from dataclasses import dataclass, field

from . import pb
from .errors import LineageChanged


@dataclass
class Held:
    """One record as held after a pull."""
    version: int            # the record's version
    grid_code: str          # the grid it is in
    record: object          # the pb.Record as stored


@dataclass
class Pull:
    """The result of a pull: records by (kind, record_key), the position to
    sync from next time, and the store epoch it belongs to."""
    prefixes: list
    records: dict = field(default_factory=dict)
    next_seq: int = 0
    store_epoch: int = 0


def _check_lineage(state, epoch, head):
    if epoch and state.store_epoch and epoch != state.store_epoch:
        raise LineageChanged(
            f"the broker's store has epoch {epoch:016x}, not {state.store_epoch:016x} as "
            f"pulled: it was restored from a backup or replaced; pull again from scratch",
            epoch=state.store_epoch, broker_epoch=epoch, head_seq=head,
            position=state.next_seq)
    if head < state.next_seq:
        raise LineageChanged(
            f"the broker's head seq {head} is below our position {state.next_seq}: its "
            f"store was restored from a backup or replaced; pull again from scratch",
            epoch=state.store_epoch, broker_epoch=epoch, head_seq=head,
            position=state.next_seq)
    if epoch and not state.store_epoch:
        state.store_epoch = epoch


def apply_event(records, ev):
    """Apply one change event to records ((kind, key) -> Held), by version."""
    key = (ev.kind, ev.record_key)
    held = records.get(key)
    if held is not None and held.version > ev.version:
        return                          # a later snapshot page had something newer
    if ev.op == pb.OPERATION_MOVE_OUT:
        if held is not None and held.grid_code == ev.grid_code:
            del records[key]            # a MOVE_IN follows if it stays ours
    else:                               # UPSERT, VOID (record kept), MOVE_IN
        records[key] = Held(ev.version, ev.grid_code, ev.record)


def pull(client, prefixes, previous=None, limit=0):
    """Pull the records under prefixes (a grid code, or a list of grid-code
    prefixes at level boundaries) through client (a Client). With previous
    (an earlier Pull of the same prefixes) only the changes since it are
    fetched, applied to a copy of its records. Returns a Pull. Raises
    LineageChanged, and the Client's errors (ServerError with
    REASON_OUT_OF_SCOPE for a prefix outside the key's, and so on)."""
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    prefixes = list(prefixes)
    if previous is None:
        state = Pull(prefixes)
        cursor, first = b"", True
        while True:                     # 1. snapshot, page by page
            page = client.snapshot(prefixes, cursor=cursor, limit=limit)
            if first:
                state.next_seq = page.snapshot_seq      # the same on every page
                first = False
            # a page of another epoch: the snapshot was cut by a restore
            _check_lineage(state, page.store_epoch, page.snapshot_seq)
            for e in page.entries:
                state.records[(e.kind, e.record_key)] = Held(e.version, e.grid_code, e.record)
            cursor = page.next_cursor
            if not cursor:
                break
    else:
        state = Pull(prefixes, dict(previous.records), previous.next_seq,
                     previous.store_epoch)
    while True:                         # 2. deltas after snapshot_seq
        resp = client.sync(prefixes, since_seq=state.next_seq, limit=limit)
        _check_lineage(state, resp.store_epoch, resp.head_seq)
        for ev in resp.events:
            apply_event(state.records, ev)
        state.next_seq = resp.next_seq
        if resp.next_seq >= resp.head_seq:
            return state
