//! A component's weights seen through the BFL names the model code asks for, with shape checks,
//! and the candle `VarBuilder` backend that feeds them to the model constructors.

use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use parking_lot::Mutex;

use super::compact::CompactWeight;
use super::names::{Naming, Recipe};
use super::store::WeightSet;
use crate::error::{Error, Result};

/// One component's weights (files + naming).
pub struct ModelWeights {
    set: WeightSet,
    naming: Naming,
}

impl ModelWeights {
    /// Wraps opened files with their naming.
    pub fn new(set: WeightSet, naming: Naming) -> Self {
        Self { set, naming }
    }

    /// The underlying files.
    pub fn set(&self) -> &WeightSet {
        &self.set
    }

    fn recipe(&self, name: &str) -> Result<Recipe> {
        self.naming
            .recipe(name)
            .ok_or_else(|| self.set.missing(name))
    }

    fn sources(recipe: &Recipe) -> Vec<&str> {
        match recipe {
            Recipe::Same(s) | Recipe::SwapHalves(s) | Recipe::Reshape(s) => vec![s.as_str()],
            Recipe::Concat(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// True when every stored tensor behind `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.naming
            .recipe(name)
            .is_some_and(|r| Self::sources(&r).iter().all(|s| self.set.contains(s)))
    }

    /// The shape the model will see for `name` (after concatenation for split tensors).
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let recipe = self.recipe(name)?;
        match &recipe {
            Recipe::Same(s) | Recipe::SwapHalves(s) | Recipe::Reshape(s) => self.set.shape(s),
            Recipe::Concat(parts) => {
                let mut shape = self.set.shape(&parts[0])?;
                for p in &parts[1..] {
                    let s = self.set.shape(p)?;
                    if s.len() != shape.len() || s[1..] != shape[1..] {
                        return Err(self.bad(
                            p,
                            format!("shape {s:?} cannot be concatenated with {shape:?}"),
                        ));
                    }
                    shape[0] += s[0];
                }
                Ok(shape)
            }
        }
    }

    /// The first dimension of `name`'s shape.
    pub fn dim0(&self, name: &str) -> Result<usize> {
        Ok(self.shape(name)?[0])
    }

    /// Counts consecutive indices `i` from 0 for which `pattern` with `{}` replaced by `i` exists.
    pub fn count(&self, pattern: &str) -> usize {
        (0..)
            .take_while(|i| self.contains(&pattern.replace("{}", &i.to_string())))
            .count()
    }

    fn bad(&self, stored: &str, reason: String) -> Error {
        Error::BadTensor {
            path: self.set.file_of(stored),
            tensor: stored.to_string(),
            reason,
        }
    }

    /// Loads `name` as `dtype` on `device`, checking it has `expected` shape when given.
    pub fn load(
        &self,
        name: &str,
        expected: Option<&[usize]>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let recipe = self.recipe(name)?;
        let stored = Self::sources(&recipe)[0].to_string();
        let actual = self.shape(name)?;
        let target: Vec<usize> = match (&recipe, expected) {
            (Recipe::Reshape(_), Some(e)) => {
                if e.iter().product::<usize>() != actual.iter().product::<usize>() {
                    return Err(self.bad(
                        &stored,
                        format!("shape {actual:?} cannot become the expected {e:?}"),
                    ));
                }
                e.to_vec()
            }
            (_, Some(e)) if e != actual.as_slice() => {
                return Err(self.bad(
                    &stored,
                    format!("shape {actual:?} but the model needs {e:?}"),
                ));
            }
            _ => actual,
        };
        let t = match &recipe {
            Recipe::Same(s) => self.set.load(s, dtype, device)?,
            Recipe::Reshape(s) => self.set.load(s, dtype, device)?.reshape(target)?,
            Recipe::SwapHalves(s) => {
                let t = self.set.load(s, dtype, device)?;
                let half = t.dim(0)? / 2;
                Tensor::cat(&[t.narrow(0, half, half)?, t.narrow(0, 0, half)?], 0)?
            }
            Recipe::Concat(parts) => {
                let ts = parts
                    .iter()
                    .map(|p| self.set.load(p, dtype, device))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&ts, 0)?
            }
        };
        Ok(t)
    }

    /// Loads `name`, which must have `expected` shape (out, in), in its stored form when it is
    /// stored compactly for `compute` (see [`WeightSet::load_compact`]) and under its own name;
    /// `None` otherwise.
    pub fn load_compact(
        &self,
        name: &str,
        expected: &[usize],
        compute: DType,
        device: &Device,
    ) -> Result<Option<CompactWeight>> {
        let Recipe::Same(stored) = self.recipe(name)? else {
            return Ok(None);
        };
        let actual = self.shape(name)?;
        if actual != expected {
            return Err(self.bad(
                &stored,
                format!("shape {actual:?} but the model needs {expected:?}"),
            ));
        }
        self.set.load_compact(&stored, compute, device)
    }

    /// The stored size of `name` when [`Self::load_compact`] keeps it in its stored form.
    pub fn compact_len(&self, name: &str, compute: DType) -> Option<u64> {
        match self.recipe(name).ok()? {
            Recipe::Same(stored) => self.set.compact_len(&stored, compute),
            _ => None,
        }
    }

    /// A `VarBuilder` over these weights. Loading errors are kept in full (file and tensor) and
    /// can be taken back with [`LoadErrors::take`] when the model constructor fails.
    pub fn var_builder(
        self: &Arc<Self>,
        dtype: DType,
        device: &Device,
    ) -> (VarBuilder<'static>, LoadErrors) {
        let errors = LoadErrors::default();
        let backend = Backend {
            weights: self.clone(),
            first_error: errors.clone(),
        };
        (
            VarBuilder::from_backend(Box::new(backend), dtype, device.clone()),
            errors,
        )
    }
}

/// The first structured error a `VarBuilder` backend hit.
#[derive(Clone, Default)]
pub struct LoadErrors(Arc<Mutex<Option<Error>>>);

impl LoadErrors {
    /// Converts a model-constructor failure into the structured weight error when there is one.
    pub fn take(&self, fallback: candle_core::Error) -> Error {
        self.0
            .lock()
            .take()
            .unwrap_or_else(|| Error::from(fallback))
    }

    fn record(&self, e: Error) -> candle_core::Error {
        let msg = e.to_string();
        let mut slot = self.0.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
        candle_core::Error::Msg(msg)
    }
}

struct Backend {
    weights: Arc<ModelWeights>,
    first_error: LoadErrors,
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.weights
            .load(name, Some(s.dims()), dtype, dev)
            .map_err(|e| self.first_error.record(e))
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.weights
            .load(name, None, dtype, dev)
            .map_err(|e| self.first_error.record(e))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.weights.contains(name)
    }
}
