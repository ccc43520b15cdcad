//! What a loaded bundle serves, and the switch to the CPU backend when the WebGPU device fails
//! under a call (lost, destroyed or reset): the call is run again on the CPU with the weights
//! that were installed, and `info().backendReason` says what happened.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use burn::prelude::*;

use super::device::adapter_name;
#[cfg(feature = "wgpu")]
use super::device::forget_webgpu;
use super::read;
use crate::backend::{cpu_device, BackendKind};
use crate::bundle::Bundle;
use crate::classifier::Classifier;
use crate::error::{G2dError, Result};
use crate::generate::{G2dModel, Guard};

/// The networks on one device. Everything but `current` and `installed` is fixed when built,
/// and both are borrowed only between awaits, so calls may overlap freely (a classify() while
/// a regenerate() awaits the GPU, two regenerations at once).
pub(super) struct State {
    pub model: G2dModel,
    pub guard: Guard,
    /// The weights in use now: θ_orig until a regeneration is accepted.
    pub current: RefCell<Classifier>,
    /// The same weights on the host, to rebuild `current` on another device.
    pub installed: RefCell<Vec<f32>>,
    /// A set the guard accepted, sampled ahead (`install: false`) and not yet installed.
    pub pending: RefCell<Option<(Classifier, Vec<f32>)>>,
    pub original_val_accuracy: f32,
    pub theta_orig: Tensor<1>,
    pub backend: BackendKind,
    pub backend_reason: String,
    pub adapter: String,
}

impl State {
    /// Puts `model` (weights `theta`) in service.
    pub fn install(&self, model: Classifier, theta: Vec<f32>) {
        *self.current.borrow_mut() = model;
        *self.installed.borrow_mut() = theta;
    }

    /// Builds the bundle's networks on `device` and installs `installed` (θ_orig or an accepted
    /// regeneration).
    pub async fn build(
        bundle: &Bundle,
        device: Device,
        backend: BackendKind,
        backend_reason: String,
        installed: Vec<f32>,
    ) -> Result<State> {
        let model = G2dModel::from_bundle(bundle, &device)?;
        let guard = Guard::of_bundle(bundle, &device);
        let original_val_accuracy = read(guard.accuracy(&model.original)).await?[0];
        let current = if installed == bundle.theta_orig {
            model.original.clone()
        } else {
            model.with_theta(&installed)?
        };
        Ok(State {
            current: RefCell::new(current),
            installed: RefCell::new(installed),
            pending: RefCell::new(None),
            theta_orig: Tensor::<1>::from_floats(bundle.theta_orig.as_slice(), &device),
            adapter: adapter_name(&device, backend),
            model,
            guard,
            original_val_accuracy,
            backend,
            backend_reason,
        })
    }
}

/// Whether a failed readback means the device is gone (cubecl reports a lost or destroyed
/// device as "poisoned"), rather than one call failing on a device that still works.
fn device_lost(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    ["poisoned", "lost", "destroyed"]
        .iter()
        .any(|word| reason.contains(word))
}

/// A loaded bundle and the state serving it now.
pub(super) struct Session {
    pub bundle: Bundle,
    state: RefCell<Rc<State>>,
}

impl Session {
    pub fn new(bundle: Bundle, state: State) -> Session {
        Session {
            bundle,
            state: RefCell::new(Rc::new(state)),
        }
    }

    pub fn state(&self) -> Rc<State> {
        self.state.borrow().clone()
    }

    /// Runs `op` on the current state. When it fails on WebGPU because the device was lost (its
    /// readback errs, naming a lost device), the session moves to the CPU backend and runs `op`
    /// once more there (`onProgress` then counts from the first step again). A set kept aside by
    /// `install: false` does not move with it.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Rc<State>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let state = self.state();
        match op(state.clone()).await {
            Err(G2dError::Backend { backend, reason })
                if state.backend == BackendKind::Wgpu
                    && backend == "readback"
                    && device_lost(&reason) =>
            {
                op(self.fall_back(&state, reason).await?).await
            }
            other => other,
        }
    }

    async fn fall_back(&self, failed: &Rc<State>, reason: String) -> Result<Rc<State>> {
        if !Rc::ptr_eq(&self.state(), failed) {
            return Ok(self.state()); // another call has switched already
        }
        #[cfg(feature = "wgpu")]
        forget_webgpu(&reason);
        let why = format!("the WebGPU device failed ({reason}); switched to the CPU backend");
        let installed = failed.installed.borrow().clone();
        let cpu =
            State::build(&self.bundle, cpu_device(), BackendKind::Cpu, why, installed).await?;
        if !Rc::ptr_eq(&self.state(), failed) {
            return Ok(self.state()); // another call switched while this one built
        }
        let cpu = Rc::new(cpu);
        *self.state.borrow_mut() = cpu.clone();
        Ok(cpu)
    }
}
