//! burn optimizers from `[train]`.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};

use crate::spec::{Optimizer, TrainSpec};

/// The optimizer for a run. Adam/AdamW keep burn's defaults (beta1 0.9, beta2 0.999,
/// eps 1e-5). SGD momentum uses no dampening (PyTorch semantics; burn's default dampening is
/// 0.1). `weight_decay` is an L2 penalty added to the gradient for adam and sgd, and the
/// decoupled decay of AdamW.
pub(crate) fn build(t: &TrainSpec) -> ModuleOptimizer {
    let l2 = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer {
        Optimizer::Adam => AdamConfig::new().with_weight_decay(l2).init(),
        Optimizer::Adamw => AdamWConfig::new().with_weight_decay(t.weight_decay as f32).init(),
        Optimizer::Sgd => {
            let momentum = (t.momentum > 0.0)
                .then(|| MomentumConfig::new().with_momentum(t.momentum).with_dampening(0.0).with_nesterov(t.nesterov));
            SgdConfig::new().with_momentum(momentum).with_weight_decay(l2).init()
        }
    }
}
