//! The ids a client sees for its requests. An engine reuses a request's slot as soon as
//! the request finishes there, but the front end may deliver its last events later
//! ([`super::FrontendQueue::delivery`]): so a backend hands out ids of its own, whose slot
//! is freed only when the request's last event has been delivered, and maps the engine's
//! ids to them as the engine produces its events.

use crate::{ReqId, SimTime};

/// Where a request went: the instance (0 for a single engine) and when it reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The instance that took it.
    pub instance: u32,
    /// When it reached that instance's engine (after the front end).
    pub arrival: SimTime,
}

/// The client's ids: a slot per request in flight (reused once its last event has been
/// delivered), the request's number above the slot in the id, and where each went.
#[derive(Debug, Default)]
pub struct ClientIds {
    slots: Vec<Slot>,
    free: Vec<u32>,
    sent: u64,
}

/// One slot: the request's number (the id's high bits) and where it went.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sent: u64,
    placement: Option<Placement>,
}

impl ClientIds {
    /// A slot for a new request, and its id.
    pub fn issue(&mut self) -> (u32, ReqId) {
        self.sent += 1;
        let fresh = Slot {
            sent: self.sent,
            placement: None,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = fresh;
                s
            }
            None => {
                self.slots.push(fresh);
                (self.slots.len() - 1) as u32
            }
        };
        (slot, self.id_of(slot))
    }

    /// The id of the request in `slot`: its number above, the slot below (so the client's
    /// table by slot stays dense).
    pub fn id_of(&self, slot: u32) -> ReqId {
        ReqId((self.slots[slot as usize].sent << 32) | u64::from(slot))
    }

    /// Records where the request in `slot` went.
    pub fn place(&mut self, slot: u32, placement: Placement) {
        self.slots[slot as usize].placement = Some(placement);
    }

    /// Where request `id` went; readable until its slot is taken again.
    pub fn placement(&self, id: ReqId) -> Option<Placement> {
        let slot = self.slots.get(slot_of(id) as usize)?;
        (slot.sent == id.0 >> 32).then_some(slot.placement)?
    }

    /// The request in `slot` has had its last event delivered.
    pub fn free(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// The slot in an id (the engine's or the client's).
pub fn slot_of(id: ReqId) -> u32 {
    (id.0 & 0xffff_ffff) as u32
}

/// One engine's request slots → the client's slots of the requests in them.
#[derive(Debug, Default, Clone)]
pub struct EngineSlots(Vec<u32>);

impl EngineSlots {
    /// The engine's request `engine_id` is the client's request in `slot`.
    pub fn bind(&mut self, engine_id: ReqId, slot: u32) {
        let e = slot_of(engine_id) as usize;
        if self.0.len() <= e {
            self.0.resize(e + 1, u32::MAX);
        }
        self.0[e] = slot;
    }

    /// The client's slot of the request the engine calls `engine_id` (asked while the
    /// engine still holds it: when it produces the request's events).
    pub fn client_slot(&self, engine_id: ReqId) -> u32 {
        self.0[slot_of(engine_id) as usize]
    }
}
