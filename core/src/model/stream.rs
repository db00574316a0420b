//! Streaming of a model's blocks: each block's tensors kept in host memory in their stored form
//! ([`HostBlock`]), and a bounded window of blocks in working form, the next ones built on
//! another thread while the current one computes ([`pipelined`]).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::compact::CompactWeight;
use super::layers::WeightSource;
use super::weights::ModelWeights;
use crate::error::{Error, Result};

/// One block's tensors in host memory: compact weights in their stored form, the others at the
/// compute dtype.
pub struct HostBlock {
    /// Page-locked regions of `tensors` (streaming to CUDA). Declared first: dropped, and
    /// unlocked, before the memory they lock is freed.
    pinned: Vec<crate::interop::Pinned>,
    tensors: HashMap<String, Held>,
}

enum Held {
    Tensor(Tensor),
    Compact(Arc<CompactWeight>),
}

impl HostBlock {
    /// Reads the tensors `names` (with their shapes) of `weights` into host memory for
    /// computing in `compute`.
    pub fn read(
        weights: &ModelWeights,
        names: &[(String, Vec<usize>)],
        compute: DType,
    ) -> Result<Self> {
        let cpu = Device::Cpu;
        let mut tensors = HashMap::with_capacity(names.len());
        for (name, shape) in names {
            let compact = match shape.len() {
                2 => weights.load_compact(name, shape, compute, &cpu)?,
                _ => None,
            };
            let held = match compact {
                Some(c) => Held::Compact(Arc::new(c)),
                None => Held::Tensor(weights.load(name, Some(shape), compute, &cpu)?),
            };
            tensors.insert(name.clone(), held);
        }
        Ok(Self {
            pinned: Vec::new(),
            tensors,
        })
    }

    /// Page-locks the block's buffers for copies to `device` (CUDA: uploads are then DMA
    /// transfers straight from them); nothing on other devices, or for a buffer the driver
    /// refuses to lock (it is then copied from pageable memory, only slower).
    pub fn pin_for(&mut self, device: &Device) {
        if device.is_cpu() {
            return;
        }
        for held in self.tensors.values() {
            let region = match held {
                Held::Compact(c) => c.host_bytes().map(|b| (b.as_ptr(), b.len())),
                Held::Tensor(t) => host_region(t),
            };
            // SAFETY: the region is the heap buffer of a tensor or weight this block owns and
            // never changes; `pinned` is dropped before `tensors`, so it is unlocked first.
            let pinned = region.and_then(|(ptr, len)| unsafe {
                crate::interop::pin(device, std::slice::from_raw_parts(ptr, len))
            });
            self.pinned.extend(pinned);
        }
    }

    fn held(&self, name: &str) -> Result<&Held> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::invalid(format!("'{name}' is not part of the streamed block")))
    }
}

impl WeightSource for HostBlock {
    fn tensor(&self, name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        match self.held(name)? {
            Held::Tensor(t) if t.dims() == shape => Ok(t.to_dtype(dtype)?.to_device(device)?),
            Held::Tensor(t) => Err(Error::invalid(format!(
                "'{name}' has shape {:?}, not {shape:?}",
                t.dims()
            ))),
            Held::Compact(c) => Ok(c.dequantize(dtype)?.to_device(device)?),
        }
    }

    fn compact(
        &self,
        name: &str,
        _shape: &[usize],
        _compute: DType,
        device: &Device,
    ) -> Result<Option<Arc<CompactWeight>>> {
        Ok(match self.held(name)? {
            Held::Compact(c) if device.is_cpu() => Some(c.clone()),
            Held::Compact(c) => Some(Arc::new(c.to_device(device)?)),
            Held::Tensor(_) => None,
        })
    }
}

/// The heap buffer of a host tensor (its whole storage).
fn host_region(t: &Tensor) -> Option<(*const u8, usize)> {
    use candle_core::{CpuStorage as C, Storage};
    let (storage, _) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    fn bytes<T>(v: &[T]) -> Option<(*const u8, usize)> {
        Some((v.as_ptr() as *const u8, std::mem::size_of_val(v)))
    }
    match cpu {
        C::F32(v) => bytes(v),
        C::BF16(v) => bytes(v),
        C::F16(v) => bytes(v),
        C::U8(v) => bytes(v),
        _ => None,
    }
}

/// Calls `run(i, item)` for `i` in `0..n`, in order, on items made by `build(i)`, with at most
/// `window` items alive at once: with a window of 2 or more, the next items are built on another
/// thread while `run` works on the current one; with 1, each is built just before its turn.
/// Stops at the first error of either.
pub fn pipelined<B: Send>(
    n: usize,
    window: usize,
    build: impl Fn(usize) -> Result<B> + Sync,
    mut run: impl FnMut(usize, B) -> Result<()>,
) -> Result<()> {
    if window <= 1 {
        for i in 0..n {
            run(i, build(i)?)?;
        }
        return Ok(());
    }
    // One item running, one being built, `window − 2` waiting in the channel.
    let (tx, rx) = crossbeam_channel::bounded(window - 2);
    std::thread::scope(|scope| {
        let build = &build;
        std::thread::Builder::new()
            .name("flux-prefetch".into())
            .spawn_scoped(scope, move || {
                for i in 0..n {
                    let item = build(i);
                    let failed = item.is_err();
                    // A closed channel: the consumer stopped.
                    if tx.send(item).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::invalid(format!("cannot start the prefetch thread: {e}")))?;
        let consumed = (0..n).try_for_each(|i| {
            let item = rx
                .recv()
                .map_err(|_| Error::invalid("the prefetch thread stopped early"))??;
            run(i, item)
        });
        // Closing the channel stops a producer still building (the scope joins it).
        drop(rx);
        consumed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An item counted in the number alive while it lives.
    struct Counted<'a>(&'a AtomicUsize);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn pipelined_runs_in_order_within_the_window() {
        for window in 1..5 {
            let (alive, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let mut seen = vec![];
            pipelined(
                9,
                window,
                |i| {
                    let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    Ok((i, Counted(&alive)))
                },
                |i, (built, counted)| {
                    assert_eq!(i, built);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    seen.push(i);
                    drop(counted);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, (0..9).collect::<Vec<_>>());
            let most = most.load(Ordering::SeqCst);
            assert!(most <= window, "window {window}: {most} alive at once");
            assert_eq!(alive.load(Ordering::SeqCst), 0);
        }
    }

    #[test]
    fn pipelined_stops_at_the_first_error() {
        for window in [1, 3] {
            let err = pipelined(
                9,
                window,
                |i| match i {
                    4 => Err(Error::invalid("block 4 is corrupt")),
                    _ => Ok(i),
                },
                |_, _| Ok(()),
            );
            assert!(
                err.unwrap_err().to_string().contains("block 4"),
                "window {window}"
            );
            let mut ran = 0;
            let err = pipelined(9, window, Ok, |i, _| {
                ran += 1;
                match i {
                    2 => Err(Error::Cancelled),
                    _ => Ok(()),
                }
            });
            assert!(matches!(err, Err(Error::Cancelled)));
            assert_eq!(ran, 3, "window {window}");
        }
    }
}
