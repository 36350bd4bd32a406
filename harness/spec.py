"""The TimeTrial contract: workloads, submissions and the names they share.

This module is the centre of the project. Everything else depends on it and it
depends on nothing of ours, nor on torch or jax: a JAX-only user never imports
torch and vice versa.

Names and signatures follow MLCommons AlgoPerf v0.6 so that a submission
written for AlgoPerf (``from algoperf import spec``) runs here unmodified; the
harness makes ``algoperf.spec`` resolve to this module when no real
``algoperf`` is installed (see ``harness/algoperf_compat.py``).

TimeTrial additions to AlgoPerf's ``Workload`` are grouped at the end of the
class and marked as such. They are harness-facing: a submission sees the
workload through ``harness.submission.view.SubmissionWorkload``, which exposes
only what a submission may use.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union


class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(enum.Enum):
    TRAIN = 0
    EVAL = 1


class ParameterType(enum.Enum):
    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12  # fused QKV projections
    ATTENTION_KV = 13  # fused KV projections
    ATTENTION_BIAS = 14


# A tensor of either framework (jax.Array, torch.Tensor, np.ndarray).
Tensor = Any


class ShapeTuple:
    """A shape that pytree utilities treat as a leaf, not as a tuple of ints."""

    def __init__(self, shape_tuple):
        self.shape_tuple = tuple(shape_tuple)

    def __repr__(self):
        return f'ShapeTuple({self.shape_tuple})'

    def __eq__(self, other):
        return isinstance(other, ShapeTuple) and self.shape_tuple == other.shape_tuple

    def __hash__(self):
        return hash(self.shape_tuple)


Shape = Union[Tuple[int, ...], ShapeTuple]
ParameterShapeTree = Dict[str, Any]
ParameterKey = str
# JAX: a nested dict of arrays. PyTorch: the nn.Module itself (AlgoPerf's rule).
ParameterContainer = Any
ParameterTypeTree = Dict[ParameterKey, Any]
# JAX: a PRNG key. PyTorch: a uint32 numpy array of shape (2,).
RandomState = Any
OptimizerState = Union[Dict[str, Any], Tuple[Any, Any], Any]
# A namedtuple built from the trial's hyperparameters (attribute access), or
# None under the self-tuning ruleset.
Hyperparameters = Any
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = Tuple[ParameterContainer, ModelAuxiliaryState]

FRAMEWORKS = ('jax', 'pytorch')


class TrainingCompleteError(Exception):
    """Raised by a submission to end its training; the trial gets a final eval."""




@dataclasses.dataclass(frozen=True)
class Budget:
    """Target and budget of one workload × size × variant on one hardware class.

    Workloads ship defaults (``Workload.default_budget``); ``timetrial
    calibrate`` measures them for the machine at hand and the harness passes
    the calibrated one to the workload's constructor.
    """

    validation_target_value: float
    max_allowed_runtime_sec: float
    eval_period_time_sec: float
    step_hint: int
    test_target_value: Optional[float] = None
    #: Median steps the reference baseline took to the target (``timetrial calibrate``'s
    #: reruns; None where not measured). A horizon for schedules tied to reaching the
    #: target rather than to the budget (SALT's distillation phase).
    reference_steps_to_target: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class WorkloadInfo:
    """What the registry knows of a workload without importing a framework.

    Each package under ``workloads/`` defines ``INFO = WorkloadInfo(...)`` in
    its ``__init__.py``; the harness discovers them, never by a hard-coded list.
    ``classes`` maps framework -> 'module:Class'; ``prepare`` is
    'module:function' taking ``(data_dir, variant=None)`` and building the data.
    """

    name: str
    sizes: Tuple[str, ...]
    variants: Tuple[str, ...]
    classes: Dict[str, str]
    prepare: str
    description: str = ''
    #: 'centralized' (AlgoPerf's contract) or 'federated' (its own contract).
    kind: str = 'centralized'


class BatchIterator(abc.ABC):
    """An infinite, resumable iterator over training batches.

    Batch ``i`` depends only on (seed, i), so ``position`` alone restores the
    exact data order after preemption (AlgoPerf's resume does not do this).
    """

    position: int = 0

    def __iter__(self):
        return self

    @abc.abstractmethod
    def __next__(self) -> Dict[str, Tensor]:
        """The next batch: a dict with 'inputs', 'targets' and maybe 'weights'."""

    def state_dict(self) -> Dict[str, int]:
        return {'position': int(self.position)}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.position = int(state['position'])


class Workload(metaclass=abc.ABCMeta):
    """AlgoPerf's workload API, plus TimeTrial's harness-facing additions."""

    def __init__(
        self,
        size: Optional[str] = None,
        variant: Optional[str] = None,
        budget: Optional[Budget] = None,
        *args,
        **kwargs,
    ) -> None:
        del args, kwargs
        self.size = size or (self.sizes[0] if self.sizes else None)
        self.variant = variant
        self.budget = budget or self.default_budget(self.size, variant)
        self._param_shapes: Optional[ParameterShapeTree] = None
        self._param_types: Optional[ParameterTypeTree] = None
        self._eval_iters: Dict[str, Iterator] = {}
        self.metrics_logger = None

    # ---- AlgoPerf v0.6 ------------------------------------------------------

    @property
    @abc.abstractmethod
    def target_metric_name(self) -> str:
        """The metric the target is on, without split prefix (e.g. 'loss')."""

    def has_reached_validation_target(self, eval_result: Dict[str, float]) -> bool:
        value = eval_result[f'validation/{self.target_metric_name}']
        if self.target_mode == 'min':
            return value <= self.validation_target_value
        return value >= self.validation_target_value

    def has_reached_test_target(self, eval_result: Dict[str, float]) -> bool:
        if self.test_target_value is None:
            return False
        value = eval_result[f'test/{self.target_metric_name}']
        if self.target_mode == 'min':
            return value <= self.test_target_value
        return value >= self.test_target_value

    @abc.abstractmethod
    def _build_input_queue(
        self,
        data_rng: RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: Optional[bool] = None,
        repeat_final_dataset: Optional[bool] = None,
        num_batches: Optional[int] = None,
    ) -> BatchIterator:
        """The training (or eval) batches, already on the device.

        Harness only; never called by a submission.
        """

    def attach_metrics_logger(self, metrics_logger) -> None:
        self.metrics_logger = metrics_logger

    @property
    def validation_target_value(self) -> float:
        """The validation target for this workload, size, variant and hardware."""
        return self.budget.validation_target_value

    @property
    def test_target_value(self) -> Optional[float]:
        return self.budget.test_target_value

    @property
    @abc.abstractmethod
    def loss_type(self) -> LossType:
        """The type of loss function."""

    @property
    @abc.abstractmethod
    def num_train_examples(self) -> int:
        """The size of the training set."""

    @property
    @abc.abstractmethod
    def eval_batch_size(self) -> int:
        """The batch size for evaluation."""

    @property
    def num_eval_train_examples(self) -> int:
        return self.num_validation_examples

    @property
    @abc.abstractmethod
    def num_validation_examples(self) -> int:
        """The size of the validation set."""

    @property
    def num_test_examples(self) -> Optional[int]:
        return None

    @property
    def train_mean(self) -> Any:
        return None

    @property
    def train_stddev(self) -> Any:
        return None

    @property
    def max_allowed_runtime_sec(self) -> float:
        """Submission-time budget of one trial, in seconds."""
        return self.budget.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float:
        """Submission time between two evaluations, in seconds."""
        return self.budget.eval_period_time_sec

    @property
    def step_hint(self) -> int:
        """About how many steps the baseline takes within the budget."""
        return self.budget.step_hint

    @property
    def param_shapes(self) -> ParameterShapeTree:
        if self._param_shapes is None:
            raise ValueError(
                'workload.init_model_fn() must be called before workload.param_shapes is read.'
            )
        return self._param_shapes

    @property
    def model_params_types(self) -> ParameterTypeTree:
        if self._param_types is None:
            raise ValueError(
                'workload.init_model_fn() must be called before '
                'workload.model_params_types is read.'
            )
        return self._param_types

    def is_output_params(self, param_key: ParameterKey) -> bool:
        return False

    @abc.abstractmethod
    def init_model_fn(self, rng: RandomState) -> ModelInitState:
        """Return (initial_params, initial_model_state)."""

    @abc.abstractmethod
    def model_fn(
        self,
        params: ParameterContainer,
        augmented_and_preprocessed_input_batch: Dict[str, Tensor],
        model_state: ModelAuxiliaryState,
        mode: ForwardPassMode,
        rng: RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ) -> Tuple[Tensor, ModelAuxiliaryState]:
        """Return (logits_batch, new_model_state)."""

    @abc.abstractmethod
    def loss_fn(
        self,
        label_batch: Tensor,
        logits_batch: Tensor,
        mask_batch: Optional[Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, Tensor]:
        """{'summed', 'n_valid_examples', 'per_example'} of the (masked) loss.

        No regularization: that is the submission's business.
        """

    @abc.abstractmethod
    def eval_model(
        self,
        global_batch_size: int,
        params: ParameterContainer,
        model_state: ModelAuxiliaryState,
        rng: RandomState,
        data_dir: str,
        imagenet_v2_data_dir: Optional[str],
        global_step: int,
    ) -> Dict[str, float]:
        """Full evaluation: flat 'split/metric' keys. Harness only, off the clock."""

    # ---- TimeTrial additions (harness-facing) -------------------------------

    #: Registry name of the workload's base (e.g. 'lm'); set by subclasses.
    name: str = ''
    #: 'jax' or 'pytorch'; set by the framework subclass.
    framework: str = ''
    #: Sizes this workload offers, smallest first.
    sizes: Tuple[str, ...] = ()
    #: Variants (architecture or data changes with their own targets).
    variants: Tuple[str, ...] = ()

    #: Extra attribute names a submission may read through its workload view
    #: (e.g. a teacher model's API); everything else beyond the AlgoPerf API is hidden.
    submission_attributes: Tuple[str, ...] = ()
    #: Those of ``submission_attributes`` that run an auxiliary model (a teacher): the
    #: view times every call of them, device synchronized, into the trial's ``teacher_time_s``.
    teacher_calls: Tuple[str, ...] = ()

    def eval_target_split(
        self,
        global_batch_size: int,
        params: ParameterContainer,
        model_state: ModelAuxiliaryState,
        rng: RandomState,
        data_dir: str,
        global_step: int,
    ) -> Dict[str, float]:
        """The metrics of the split the target is set on ('validation/...'), off the clock.

        The harness's probes of snapshots (finding the first step that meets the
        target) need only these. The default is the full evaluation; a workload
        whose ``eval_model`` also scores a train subset overrides this to skip it,
        which halves what each probe costs.
        """
        return self.eval_model(global_batch_size, params, model_state, rng, data_dir, None,
                               global_step)

    @property
    def target_mode(self) -> str:
        """'min' if lower is better for the target metric, else 'max'."""
        return 'min' if self.target_metric_name in ('loss', 'ppl', 'error_rate') else 'max'

    @abc.abstractmethod
    def default_budget(self, size: Optional[str], variant: Optional[str]) -> Budget:
        """Shipped target and budget for (size, variant), for the reference CPU.

        Raise UserInputError for an unknown size or variant, listing the known ones.
        """

    @property
    @abc.abstractmethod
    def default_batch_size(self) -> int:
        """Global batch size given to a submission that does not name one."""

    @property
    def tokens_per_example(self) -> int:
        """Tokens per example for sequence workloads (1 for the others)."""
        return 1

    @property
    def reference_steps_to_target(self) -> Optional[int]:
        """Steps the reference baseline needs to reach the target (None if unknown)."""
        return self.budget.reference_steps_to_target

    def flops_per_example(self) -> Optional[float]:
        """Training FLOPs (forward + backward) per example, if countable."""
        return None

    def check_data(self, data_dir: str) -> None:
        """Raise DataNotPreparedError naming `timetrial prepare ...` if missing."""

    def eval_metric_keys(self) -> List[str]:
        return [f'validation/{self.target_metric_name}']


# ---- Submission functions (the training-algorithm track) --------------------
#
# These stubs carry the signatures that `timetrial check` compares a
# submission against. Parameter names are AlgoPerf's exactly: the harness
# passes them by keyword.

InitOptimizerFn = Callable[..., OptimizerState]


def init_optimizer_state(
    workload: Workload,
    model_params: ParameterContainer,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    rng: RandomState,
) -> OptimizerState:
    """Return the initial optimizer state. Timed."""
    raise TypeError('spec.init_optimizer_state is a signature, not an optimizer')


UpdateReturn = Tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]
UpdateParamsFn = Callable[..., UpdateReturn]


def update_params(
    workload: Workload,
    current_param_container: ParameterContainer,
    current_params_types: ParameterTypeTree,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    batch: Dict[str, Tensor],
    loss_type: LossType,
    optimizer_state: OptimizerState,
    eval_results: List[Tuple[int, float]],
    global_step: int,
    rng: RandomState,
    train_state: Optional[Dict[str, Any]] = None,
) -> UpdateReturn:
    """One training step. Timed. May raise TrainingCompleteError.

    ``train_state`` is a read-only mapping (accumulated submission time,
    evaluation results, ...). It is passed only if the function accepts it.
    """
    raise TypeError('spec.update_params is a signature, not an optimizer')


PrepareForEvalFn = Callable[..., UpdateReturn]


def prepare_for_eval(
    workload: Workload,
    current_param_container: ParameterContainer,
    current_params_types: ParameterTypeTree,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    loss_type: LossType,
    optimizer_state: OptimizerState,
    eval_results: List[Tuple[int, float]],
    global_step: int,
    rng: RandomState,
) -> UpdateReturn:
    """Optional. Called before every evaluation. Timed."""
    raise TypeError('spec.prepare_for_eval is a signature, not an optimizer')


DataSelectionFn = Callable[..., Dict[str, Tensor]]


def data_selection(
    workload: Workload,
    input_queue: Iterator[Dict[str, Any]],
    optimizer_state: OptimizerState,
    current_param_container: ParameterContainer,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    global_step: int,
    rng: RandomState,
) -> Dict[str, Tensor]:
    """Return the next training batch, drawn from ``input_queue``. Timed."""
    raise TypeError('spec.data_selection is a signature, not a selector')


def get_batch_size(workload_name: str) -> int:
    """Global batch size for ``workload_name``.

    A submission that does not know the name (raises, or returns None) gets the
    workload's ``default_batch_size``.
    """
    raise TypeError('spec.get_batch_size is a signature')


#: Submission functions: name -> (signature stub, required?).
SUBMISSION_FUNCTIONS: Dict[str, Tuple[Callable, bool]] = {
    'get_batch_size': (get_batch_size, True),
    'init_optimizer_state': (init_optimizer_state, True),
    'update_params': (update_params, True),
    'data_selection': (data_selection, True),
    'prepare_for_eval': (prepare_for_eval, False),
}
