//! Reusable slots for the replies of pending calls: one slab per connection instead of a
//! `oneshot` channel (an allocation and a free) per call.
//!
//! A caller takes a free slot and sends a [`ReplySlot`] with its request; the connection task
//! keeps it with the call's id and fills it when the reply comes (or with −1 when the reply is
//! lost). The caller's [`ReplyWait`] takes the result and frees the slot. Either side may go
//! away first: a dropped [`ReplyWait`] marks its slot abandoned (the task frees it when it
//! fills it, and a late reply is discarded); a dropped, unfilled [`ReplySlot`] (a request
//! never handled, the task gone) fills it with −1.

use crate::error::{ERR_CALLBACK_LOST, Error, RemoteError, Result};
use crate::message::OkList;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

enum State {
    Free,
    Waiting(Option<Waker>),
    Done(Result<OkList>),
    Abandoned,
}

#[derive(Default)]
struct Slab {
    slots: Vec<State>,
    free: Vec<u32>,
}

impl Slab {
    fn release(&mut self, index: u32) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            *s = State::Free;
            self.free.push(index);
        }
    }
}

/// The slots of one connection, shared by its handles and its task.
#[derive(Default, Clone)]
pub(crate) struct ReplySlots(Arc<Mutex<Slab>>);

impl ReplySlots {
    fn lock(&self) -> MutexGuard<'_, Slab> {
        // A panic never happens while the lock is held; recover the data if it ever did.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Take a free slot: the task's end and the caller's end.
    pub(crate) fn take(&self) -> (ReplySlot, ReplyWait) {
        let index = {
            let mut slab = self.lock();
            match slab.free.pop() {
                Some(i) => {
                    slab.slots[i as usize] = State::Waiting(None);
                    i
                }
                None => {
                    slab.slots.push(State::Waiting(None));
                    // More than 2^32 calls in flight cannot fit in memory first.
                    (slab.slots.len() - 1) as u32
                }
            }
        };
        (
            ReplySlot {
                slots: Some(self.clone()),
                index,
            },
            ReplyWait {
                slots: self.clone(),
                index,
                done: false,
            },
        )
    }
}

/// The connection task's end of a slot: filled once, with the reply or with −1.
pub(crate) struct ReplySlot {
    slots: Option<ReplySlots>,
    index: u32,
}

impl ReplySlot {
    /// Fill the slot and wake its caller (or free it when the caller is gone).
    pub(crate) fn send(mut self, result: Result<OkList>) {
        if let Some(slots) = self.slots.take() {
            fill(&slots, self.index, result);
        }
    }
}

impl Drop for ReplySlot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            fill(
                &slots,
                self.index,
                Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))),
            );
        }
    }
}

fn fill(slots: &ReplySlots, index: u32, result: Result<OkList>) {
    let waker = {
        let mut slab = slots.lock();
        let Some(state) = slab.slots.get_mut(index as usize) else {
            return;
        };
        match state {
            State::Waiting(waker) => {
                let waker = waker.take();
                *state = State::Done(result);
                waker
            }
            State::Abandoned => {
                slab.release(index);
                None
            }
            State::Free | State::Done(_) => None,
        }
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// The caller's end of a slot: a future of the reply. Cancel safe: dropping it frees the slot
/// (at once when the reply is in, else when it comes or is given up).
pub(crate) struct ReplyWait {
    slots: ReplySlots,
    index: u32,
    done: bool,
}

impl Future for ReplyWait {
    type Output = Result<OkList>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))));
        }
        let mut slab = this.slots.lock();
        let Some(state) = slab.slots.get_mut(this.index as usize) else {
            return Poll::Ready(Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))));
        };
        match state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => {
                let State::Done(result) = std::mem::replace(state, State::Free) else {
                    unreachable!("matched above")
                };
                slab.free.push(this.index);
                this.done = true;
                Poll::Ready(result)
            }
            State::Free | State::Abandoned => {
                this.done = true;
                Poll::Ready(Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))))
            }
        }
    }
}

impl Drop for ReplyWait {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slab = self.slots.lock();
        let index = self.index;
        match slab.slots.get_mut(index as usize) {
            Some(state @ State::Waiting(_)) => *state = State::Abandoned,
            Some(State::Done(_)) => slab.release(index),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn filled_then_awaited() {
        let slots = ReplySlots::default();
        let (tx, rx) = slots.take();
        tx.send(Ok(OkList::EMPTY));
        assert!(rx.await.is_ok());
        // The slot is reused.
        let (_tx, _rx) = slots.take();
        assert_eq!(slots.lock().slots.len(), 1);
    }

    #[tokio::test]
    async fn dropped_slot_gives_minus_one() {
        let slots = ReplySlots::default();
        let (tx, rx) = slots.take();
        drop(tx);
        match rx.await {
            Err(Error::Remote(e)) => assert_eq!(e.code(), ERR_CALLBACK_LOST),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dropped_wait_frees_the_slot_on_fill() {
        let slots = ReplySlots::default();
        let (tx, rx) = slots.take();
        drop(rx);
        assert_eq!(slots.lock().free.len(), 0);
        tx.send(Ok(OkList::EMPTY));
        assert_eq!(slots.lock().free, vec![0]);
        // Filled first, then dropped.
        let (tx, rx) = slots.take();
        tx.send(Ok(OkList::EMPTY));
        drop(rx);
        assert_eq!(slots.lock().free, vec![0]);
    }
}
