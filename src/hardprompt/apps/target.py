"""Prompt → answer: a prompt after which a causal LM answers with a given text (GCG's task, Zou et al. 2023).

The prompt ends the user's message (`instruction + PROMPT`), inside the model's chat template when
it has one; the loss is the mean NLL of the target's tokens after the assistant's turn opens.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HardpromptError
from ..models.causal_lm import CausalLM, load_causal_lm
from ..objectives.target_string import LMTargetString
from ..optim.pez import PEZConfig
from ..optim.registry import MethodConfig
from ..optim.result import Result
from .common import BankLike, build_vocabulary, describe_bank, run_optimizer

DEFAULT_LM = "smollm2"


def target_objective(lm: CausalLM, target: str, instruction: str = "", chat: bool = True) -> LMTargetString:
    """The target-string objective with the prompt at the end of the user's message `instruction + PROMPT`.

    With `chat`, the turn is laid out in the model's chat template (`CausalLM.chat_turn`, nanoGCG's
    layout); without it, or without a template, the model reads `instruction PROMPT target`.
    """
    before, after = lm.chat_turn(instruction) if chat else (instruction, "")
    return LMTargetString(lm, target, instruction=before, suffix=after)


def target_string(
    target: str,
    model: str | CausalLM = DEFAULT_LM,
    config: MethodConfig | None = None,
    *,
    instruction: str = "",
    chat: bool = True,
    blocklist: Sequence[str] = (),
    bank: BankLike = None,
    ascii_only: bool = False,
    words_only: bool = False,
    device: str = "auto",
) -> Result:
    """Learn a hard prompt after which `model` answers `instruction + PROMPT` with `target`.

    `chat` lays the turn out in the model's chat template (if it has one); otherwise the model
    reads `instruction PROMPT target`. Score = −mean NLL of the target's tokens. The result's
    config also says whether greedy decoding after the prompt produces the target exactly.
    """
    config = config or PEZConfig(prompt_len=20)
    if not target.strip():
        raise HardpromptError("the target text is empty")
    lm = model if isinstance(model, CausalLM) else load_causal_lm(model, device)
    objective = target_objective(lm, target, instruction, chat)
    vocab = build_vocabulary(lm, blocklist, bank, ascii_only, words_only)
    fixed_tokens = len(objective.head_ids) + len(objective.suffix_ids) + len(objective.target_ids)
    options = {
        "target": target,
        "instruction": instruction,
        "chat": bool(objective.suffix_ids),
        "bank": describe_bank(bank),
    }
    result = run_optimizer(objective, vocab, config, options, lm.name, lm.max_positions - fixed_tokens)
    result.config["target_nll"] = -result.score
    result.config["greedy_says_target"] = objective.says_target(result.token_ids)
    return result
