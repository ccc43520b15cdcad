//! Stage 1b, parameter vectors: which tensors of the classifier are regenerated, and how they
//! flatten to one vector θ and back. A [`Manifest`] names every tensor with its shape and offset,
//! so a vector is meaningful only together with the manifest that made it. The same mechanism
//! stores the decoder and denoiser weights in a bundle.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::error::{ensure_finite, G2dError, Result};

/// Which layers of the classifier are regenerated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The output layer (weights and bias), as in p-diff's default.
    Last,
    /// The two layers closest to the output.
    LastTwo,
    /// Every parameter of the network.
    All,
}

/// The layer a tensor belongs to: its name without the last part (`fc2` of `fc2.weight`).
pub fn layer_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(layer, _)| layer)
}

/// The PyTorch state_dict key of each classifier tensor of an imported model (classifier path
/// → key), carried from the collection into the bundle so exports keep the imported names.
pub type TorchNames = std::collections::BTreeMap<String, String>;

impl Scope {
    /// The layers of `model` this scope regenerates (all of them for a model with fewer
    /// layers than the scope names).
    pub fn layers(self, model: &Classifier) -> Vec<String> {
        let mut all = model.layer_names();
        let keep = match self {
            Scope::Last => 1,
            Scope::LastTwo => 2,
            Scope::All => all.len(),
        };
        all.split_off(all.len().saturating_sub(keep))
    }

    /// Whether the tensor called `name` (e.g. `fc3.weight`) belongs to one of `layers`.
    pub fn contains(layers: &[String], name: &str) -> bool {
        layers.iter().any(|l| l == layer_of(name))
    }
}

/// One tensor inside a flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl TensorEntry {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Names, shapes and offsets of the tensors in a flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub tensors: Vec<TensorEntry>,
}

impl Manifest {
    /// The manifest of the tensors of `model` selected by `keep(name)`, in module order.
    pub fn of<M: Module>(model: &M, keep: impl Fn(&str) -> bool) -> Manifest {
        let collector = visit_named(model, ShapeCollector::default());
        let mut offset = 0;
        let tensors = collector
            .found
            .into_iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, shape)| {
                let entry = TensorEntry {
                    name,
                    shape,
                    offset,
                };
                offset += entry.len();
                entry
            })
            .collect();
        Manifest { tensors }
    }

    /// Every tensor of a module.
    pub fn full<M: Module>(model: &M) -> Manifest {
        Manifest::of(model, |_| true)
    }

    /// The regenerated tensors of `scope`.
    pub fn regenerated(model: &Classifier, scope: Scope) -> Manifest {
        let layers = scope.layers(model);
        Manifest::of(model, |name| Scope::contains(&layers, name))
    }

    /// The tensors of the classifier that `scope` leaves fixed.
    pub fn fixed(model: &Classifier, scope: Scope) -> Manifest {
        let layers = scope.layers(model);
        Manifest::of(model, |name| !Scope::contains(&layers, name))
    }

    /// Length of the flat vector.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(TensorEntry::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }

    /// Checks a vector against this manifest: right length, every value finite.
    pub fn check(&self, what: &str, theta: &[f32]) -> Result<()> {
        if theta.len() != self.len() {
            return Err(G2dError::shape(what, self.len(), theta.len()));
        }
        ensure_finite(what, theta)
    }

    /// Reads the manifest's tensors out of `model` into one vector (native: synchronous
    /// readback).
    pub fn flatten<M: Module>(&self, model: &M) -> Vec<f32> {
        let reader = ValueCollector {
            manifest: self,
            out: vec![0.0; self.len()],
        };
        visit_named(model, reader).out
    }

    /// Writes `theta` into the manifest's tensors of `model`. The vector is checked before the
    /// model is touched, so a bad vector leaves the caller's model as it was.
    pub fn unflatten<M: Module>(&self, model: M, theta: &[f32]) -> Result<M> {
        self.check("parameter vector", theta)?;
        self.write(model, Source::Host(theta))
    }

    /// Like [`unflatten`](Self::unflatten) from a vector that is still on the device, so that a
    /// generated candidate can be evaluated before anything is read back. Finiteness is the
    /// caller's to check after its readback.
    pub fn unflatten_device<M: Module>(&self, model: M, theta: Tensor<1>) -> Result<M> {
        let [len] = theta.dims();
        if len != self.len() {
            return Err(G2dError::shape("parameter vector", self.len(), len));
        }
        self.write(model, Source::Device(theta))
    }

    fn write<M: Module>(&self, model: M, source: Source) -> Result<M> {
        let actual = Manifest::full(&model);
        for entry in &self.tensors {
            match actual.tensors.iter().find(|t| t.name == entry.name) {
                Some(t) if t.shape == entry.shape => {}
                Some(t) => {
                    return Err(G2dError::shape(
                        format!("tensor {}", entry.name),
                        format!("{:?}", t.shape),
                        format!("{:?}", entry.shape),
                    ))
                }
                None => {
                    return Err(G2dError::shape(
                        "tensor names",
                        format!("one of {:?}", actual.names()),
                        &entry.name,
                    ))
                }
            }
        }
        let device = model.devices()[0].clone();
        let writer = ValueWriter {
            manifest: self,
            source,
            device,
        };
        Ok(map_named(model, writer))
    }
}

/// What a visitor of named parameters does with each float tensor; [`visit_named`] tracks the
/// dotted path (`fc2.weight`), the one place module paths are worked out.
pub(crate) trait NamedVisitor {
    fn visit_named<const D: usize>(&mut self, name: &str, param: &Param<Tensor<D>>);
}

/// The same for a mapper ([`map_named`]).
pub(crate) trait NamedMapper {
    fn map_named<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>>;
}

/// Visits every float parameter of `model` with its dotted name.
pub(crate) fn visit_named<M: Module, V: NamedVisitor>(model: &M, visitor: V) -> V {
    let mut tracked = PathTracked {
        inner: visitor,
        path: Vec::new(),
    };
    model.visit(&mut tracked);
    tracked.inner
}

/// Maps every float parameter of `model` with its dotted name.
pub(crate) fn map_named<M: Module, T: NamedMapper>(model: M, mapper: T) -> M {
    let mut tracked = PathTracked {
        inner: mapper,
        path: Vec::new(),
    };
    model.map(&mut tracked)
}

/// Tracks the dotted path of the tensor being visited, leaving out enum variant names. The
/// i-th element of a list field is named by the field and its position from 1, as layers are
/// written by hand: `fc: Vec<Linear>` gives `fc1.weight`, `fc2.weight`, ….
struct PathTracked<T> {
    inner: T,
    path: Vec<Part>,
}

enum Part {
    Field(String),
    ListIndex(usize),
    Variant,
}

impl<T> PathTracked<T> {
    fn enter(&mut self, name: &str, container: &str) {
        let part = match (container, name.parse::<usize>()) {
            ("Vec", Ok(i)) => Part::ListIndex(i),
            (c, _) if c.starts_with("Enum:") => Part::Variant,
            _ => Part::Field(name.to_string()),
        };
        self.path.push(part);
    }

    fn name(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for part in &self.path {
            match (part, parts.last_mut()) {
                (Part::Field(f), _) => parts.push(f.clone()),
                (Part::ListIndex(i), Some(field)) => field.push_str(&(i + 1).to_string()),
                (Part::ListIndex(i), None) => parts.push((i + 1).to_string()),
                (Part::Variant, _) => {}
            }
        }
        parts.join(".")
    }
}

impl<T: NamedVisitor> ModuleVisitor for PathTracked<T> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.name();
        self.inner.visit_named(&name, param);
    }
}

impl<T: NamedMapper> ModuleMapper for PathTracked<T> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.name();
        self.inner.map_named(&name, param)
    }
}

#[derive(Default)]
struct ShapeCollector {
    found: Vec<(String, Vec<usize>)>,
}

impl NamedVisitor for ShapeCollector {
    fn visit_named<const D: usize>(&mut self, name: &str, param: &Param<Tensor<D>>) {
        self.found
            .push((name.to_string(), param.val().dims().to_vec()));
    }
}

struct ValueCollector<'a> {
    manifest: &'a Manifest,
    out: Vec<f32>,
}

impl NamedVisitor for ValueCollector<'_> {
    fn visit_named<const D: usize>(&mut self, name: &str, param: &Param<Tensor<D>>) {
        if let Some(entry) = self.manifest.tensors.iter().find(|t| t.name == name) {
            let values = param
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 parameters");
            self.out[entry.offset..entry.offset + entry.len()].copy_from_slice(&values);
        }
    }
}

#[allow(clippy::large_enum_variant)] // short-lived argument, never stored
enum Source<'a> {
    Host(&'a [f32]),
    Device(Tensor<1>),
}

struct ValueWriter<'a> {
    manifest: &'a Manifest,
    source: Source<'a>,
    device: Device,
}

impl NamedMapper for ValueWriter<'_> {
    fn map_named<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>> {
        let Some(entry) = self.manifest.tensors.iter().find(|t| t.name == name) else {
            return param;
        };
        let range = entry.offset..entry.offset + entry.len();
        let shape: [usize; D] = entry.shape.clone().try_into().expect("manifest rank");
        let tensor = match &self.source {
            Source::Host(theta) => Tensor::<1>::from_floats(&theta[range], &self.device),
            Source::Device(theta) => theta.clone().slice([range]).to_device(&self.device),
        }
        .reshape(shape);
        param.map(|_| tensor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::classifier::Arch;

    #[test]
    fn flatten_unflatten_round_trip_is_exact() {
        let device = cpu_device();
        for arch in [Arch::Mlp, Arch::Cnn] {
            let a = Classifier::new(arch, &device);
            let b = Classifier::new(arch, &device);
            for scope in [Scope::Last, Scope::LastTwo, Scope::All] {
                let m = Manifest::regenerated(&a, scope);
                let theta = m.flatten(&a);
                assert_eq!(theta.len(), m.len());
                let b2 = m.unflatten(b.clone(), &theta).unwrap();
                assert_eq!(m.flatten(&b2), theta, "{arch} {scope}");
                // Tensors outside the scope keep b's values.
                let fixed = Manifest::fixed(&a, scope);
                assert_eq!(fixed.flatten(&b2), fixed.flatten(&b));
            }
        }
    }

    #[test]
    fn manifest_names_and_offsets_follow_the_layers() {
        let model = Classifier::new(Arch::Mlp, &cpu_device());
        let m = Manifest::regenerated(&model, Scope::LastTwo);
        let names = m.names();
        assert_eq!(names, ["fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]);
        assert_eq!(m.tensors[1].offset, 64 * 32);
        assert_eq!(m.len(), 64 * 32 + 32 + 32 * 10 + 10);
        assert_eq!(Manifest::full(&model).len(), 784 * 64 + 64 + m.len());
    }

    #[test]
    fn bad_vectors_are_rejected_before_touching_the_model() {
        let model = Classifier::new(Arch::Mlp, &cpu_device());
        let m = Manifest::regenerated(&model, Scope::Last);
        let err = m
            .unflatten(model.clone(), &[0.0; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 330, got 3"), "{err}");
        let mut theta = m.flatten(&model);
        theta[5] = f32::NAN;
        let err = m.unflatten(model.clone(), &theta).unwrap_err().to_string();
        assert!(err.contains("1 non-finite"), "{err}");
        let cnn = Classifier::new(Arch::Cnn, &cpu_device());
        let err = m
            .unflatten(cnn, &m.flatten(&model))
            .unwrap_err()
            .to_string();
        assert!(err.contains("shape mismatch"), "{err}");
    }
}
