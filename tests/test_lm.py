"""LM classification and target-string objectives, the causal-LM adapter, data loading, tune/evaluate-prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA
from tiny_lm import save_tiny_causal_lm
from transformers.optimization import Adafactor

from hardprompt.apps.tune import TuneSettings, evaluate_prompt, tune
from hardprompt.cli import main
from hardprompt.data import Example, few_shot, load_examples
from hardprompt.errors import HardpromptError
from hardprompt.models.causal_lm import load_causal_lm
from hardprompt.objectives.checkpoints import HoldoutCheckpoints
from hardprompt.objectives.classification import LMClassification, TaskFormat, length_groups, parse_verbalizer
from hardprompt.objectives.target_string import LMTargetString
from hardprompt.optim import pez, soft
from hardprompt.optim.pez import PEZConfig, continuous_prompt
from hardprompt.optim.soft import SoftConfig
from hardprompt.vocab import Vocabulary

TASK = TaskFormat("{input} It was {mask}", {"0": "bad", "1": "good"})
EXAMPLES = [
    Example("the film was great fun", "1"),
    Example("boring awful plot", "0"),
    Example("very good music and a fun story", "1"),
    Example("the worst story", "0"),
    Example("love this movie", "1"),
    Example("hate the actor", "0"),
]


@pytest.fixture(scope="module", params=["llama", "llama-bos", "gpt2"])
def tiny_lm(request, tmp_path_factory):
    architecture, _, bos = request.param.partition("-")
    folder = save_tiny_causal_lm(tmp_path_factory.mktemp(request.param), architecture, bos=bool(bos))
    return load_causal_lm(str(folder), device="cpu")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def llama(llama_dir):
    return load_causal_lm(str(llama_dir), device="cpu")


def full_logits(lm, ids: list[int]) -> torch.Tensor:
    """Next-token logits at every position of one sequence, by the plain model forward."""
    with torch.no_grad():
        return lm.model(input_ids=torch.tensor([ids])).logits[0]


def sequence_ids(lm, prompt: list[int], example: Example) -> list[int]:
    tail = lm.tokenize((" " if prompt else "") + TASK.fill(example.text))
    return lm.prefix_ids + prompt + tail


# --- adapter ------------------------------------------------------------------------------------


def test_adapter_is_frozen_and_selected_logits_match_the_model(tiny_lm):
    assert not any(p.requires_grad for p in tiny_lm.model.parameters())
    ids = tiny_lm.prefix_ids + tiny_lm.tokenize("the movie was good")
    hidden = tiny_lm.hidden_states(tiny_lm.embed(ids)[None])[0]
    expected = full_logits(tiny_lm, ids)
    torch.testing.assert_close(tiny_lm.logits(hidden[2:4]), expected[2:4], atol=1e-5, rtol=1e-5)
    some = torch.tensor([3, 7, 11])
    torch.testing.assert_close(tiny_lm.logits(hidden[-1], some), expected[-1, some], atol=1e-5, rtol=1e-5)


def test_prefix_ids_are_the_tokenizers_start_tokens(tiny_lm):
    expected = [1] if tiny_lm.tokenizer("x")["input_ids"][0] == 1 else []
    assert tiny_lm.prefix_ids == expected


def test_loading_errors_are_one_line(tmp_path):
    with pytest.raises(HardpromptError, match="not found"):
        load_causal_lm(str(tmp_path / "missing"), device="cpu")
    with pytest.raises(HardpromptError, match="GGUF file not found"):
        load_causal_lm(str(tmp_path / "model.gguf"), device="cpu")
    with pytest.raises(HardpromptError, match="not available offline"):
        load_causal_lm(str(tmp_path), device="cpu")


# --- classification objective -------------------------------------------------------------------


@pytest.mark.parametrize("share_prefix_above", [0, 10_000])  # prefix encoded once / with every input
def test_classification_loss_matches_separate_forward_passes(tiny_lm, share_prefix_above):
    prompts = [[5, 9, 40], [17, 17, 60]]
    objective = LMClassification(
        tiny_lm, TASK, EXAMPLES, fluency=0.3, batch_size=len(EXAMPLES), share_prefix_above=share_prefix_above
    )
    evaluation = objective.evaluate(tiny_lm.embed(prompts))
    words = [tiny_lm.tokenize(" bad")[0], tiny_lm.tokenize(" good")[0]]
    for row, prompt in enumerate(prompts):
        task_losses = []
        for example in EXAMPLES:
            ids = sequence_ids(tiny_lm, prompt, example)
            logits = full_logits(tiny_lm, ids)[-1, words]
            task_losses.append(F.cross_entropy(logits[None], torch.tensor([int(example.label)])))
        head = len(tiny_lm.prefix_ids)
        own = full_logits(tiny_lm, tiny_lm.prefix_ids + prompt)
        first = 0 if head else 1
        fluency = F.cross_entropy(own[head - 1 + first : head + len(prompt) - 1], torch.tensor(prompt[first:]))
        expected = 0.7 * torch.stack(task_losses).mean() + 0.3 * fluency
        torch.testing.assert_close(evaluation.loss[row], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(evaluation.score, -evaluation.loss.detach())


@pytest.mark.parametrize("share_prefix_above", [0, 10_000])
def test_gradient_reaches_the_prompt_only_and_is_finite(llama, share_prefix_above):
    objective = LMClassification(llama, TASK, EXAMPLES, fluency=0.5, share_prefix_above=share_prefix_above)
    prompt = llama.embed([[5, 9, 40, 41]]).clone().requires_grad_(True)
    objective.evaluate(prompt).loss.sum().backward()
    assert prompt.grad is not None and torch.isfinite(prompt.grad).all() and prompt.grad.abs().sum() > 0
    assert all(p.grad is None for p in llama.model.parameters())


@pytest.mark.parametrize("share_prefix_above", [0, 10_000])
def test_accuracy_matches_argmax_of_separate_forward_passes(tiny_lm, share_prefix_above):
    objective = LMClassification(tiny_lm, TASK, EXAMPLES[:2], holdout=EXAMPLES, share_prefix_above=share_prefix_above)
    words = [tiny_lm.tokenize(" bad")[0], tiny_lm.tokenize(" good")[0]]
    for prompt in ([], [7, 8]):
        correct = [
            full_logits(tiny_lm, sequence_ids(tiny_lm, prompt, e))[-1, words].argmax().item() == int(e.label)
            for e in EXAMPLES
        ]
        assert objective.score_token_ids(prompt) == pytest.approx(sum(correct) / len(EXAMPLES))


def test_minibatches_cover_an_epoch_and_are_seeded(llama):
    def batches(seed: int) -> list[list[int]]:
        objective = LMClassification(llama, TASK, EXAMPLES, batch_size=2, seed=seed)
        drawn = []
        for _ in range(3):
            objective.new_step()
            drawn.append(objective._batch.tolist())
        return drawn

    first = batches(0)
    assert sorted(i for batch in first for i in batch) == list(range(len(EXAMPLES)))
    assert first == batches(0)


def test_length_groups_cover_every_sequence_once_within_the_bounds():
    lengths = torch.tensor([5, 40, 6, 41, 5, 90, 7, 39, 6])
    groups = length_groups(lengths, max_rows=3, min_padding=0)
    assert sorted(torch.cat(groups).tolist()) == list(range(len(lengths)))
    for group in groups:
        assert len(group) <= 3
        assert len(group) * lengths[group].max() <= 1.25 * lengths[group].sum()
    assert len(groups) == 4  # [5, 5, 6], [6, 7], [39, 40, 41], [90]
    # up to min_padding padded tokens are allowed before a group closes
    assert [len(g) for g in length_groups(lengths, max_rows=100, min_padding=60)] == [5, 3, 1]


def test_chunked_candidate_scoring_equals_one_batch(llama):
    prompts = llama.embed(torch.randint(5, 300, (5, 3), generator=torch.Generator().manual_seed(0)))
    whole = LMClassification(llama, TASK, EXAMPLES, max_rows=1000)
    chunked = LMClassification(llama, TASK, EXAMPLES, max_rows=len(EXAMPLES) * 2)
    with torch.no_grad():
        torch.testing.assert_close(chunked.evaluate(prompts).loss, whole.evaluate(prompts).loss)


@pytest.mark.parametrize(
    ("template", "message"),
    [("{input} It was", "exactly once"), ("It was {mask} {input}", "{input} before"), ("{mask}{mask}", "once")],
)
def test_template_errors(template, message):
    with pytest.raises(HardpromptError, match=message):
        TaskFormat(template, {"0": "bad", "1": "good"})


@pytest.mark.parametrize(
    ("spec", "message"), [("0:bad", "at least two"), ("0:bad,1", "LABEL:WORD"), ("0:a,0:b", "twice")]
)
def test_verbalizer_errors(spec, message):
    with pytest.raises(HardpromptError, match=message):
        parse_verbalizer(spec)


def test_verbalizer_parses_labels_with_slashes():
    assert parse_verbalizer("World:politics, Sci/Tech:technology") == {"World": "politics", "Sci/Tech": "technology"}


def test_objective_errors(llama):
    with pytest.raises(HardpromptError, match="missing from the verbalizer"):
        LMClassification(llama, TASK, [*EXAMPLES, Example("meh", "2")])
    with pytest.raises(HardpromptError, match="same token"):
        LMClassification(llama, TaskFormat("{input} {mask}", {"0": "good", "1": "good"}), EXAMPLES)
    with pytest.raises(HardpromptError, match="fluency"):
        LMClassification(llama, TASK, EXAMPLES, fluency=1.5)
    with pytest.raises(HardpromptError, match="no training"):
        LMClassification(llama, TASK, [])


# --- target string --------------------------------------------------------------------------------


def test_target_string_loss_is_the_targets_nll(tiny_lm):
    objective = LMTargetString(tiny_lm, " the movie was good", instruction="tell me about it")
    prompt = [12, 30, 31]
    head = tiny_lm.prefix_ids + tiny_lm.tokenize("tell me about it") + prompt
    target = tiny_lm.tokenize(" the movie was good")
    logits = full_logits(tiny_lm, head + target)[len(head) - 1 : -1]
    expected = F.cross_entropy(logits, torch.tensor(target))
    assert objective.score_token_ids(prompt) == pytest.approx(-expected.item(), abs=1e-5)


def test_target_string_with_a_suffix_reads_instruction_prompt_suffix_target(tiny_lm):
    """The chat layout: the suffix (closing the user's turn) sits between the prompt and the target."""
    objective = LMTargetString(tiny_lm, " good", instruction="tell me", suffix=" it was")
    prompt = [12, 30]
    head = tiny_lm.prefix_ids + tiny_lm.tokenize("tell me") + prompt + tiny_lm.tokenize(" it was")
    target = tiny_lm.tokenize(" good")
    logits = full_logits(tiny_lm, head + target)[len(head) - 1 : -1]
    expected = F.cross_entropy(logits, torch.tensor(target))
    assert objective.score_token_ids(prompt) == pytest.approx(-expected.item(), abs=1e-5)
    assert objective.score_token_ids(prompt) != pytest.approx(
        LMTargetString(tiny_lm, " good", instruction="tell me").score_token_ids(prompt)
    )


def test_pez_lowers_the_target_nll(llama):
    objective = LMTargetString(llama, " good good good")
    vocab = Vocabulary(llama.tokenizer, len(llama.embedding_table), llama.tokenize)
    result = pez.run(objective, vocab, PEZConfig(prompt_len=4, steps=40, lr=0.3, seed=0, progress=False))
    assert result.history[-1] > result.history[0]
    assert result.score == pytest.approx(objective.score_token_ids(vocab.encode(result.prompt)))


def test_adafactor_lowers_the_loss_and_is_recorded(llama):
    objective = LMTargetString(llama, " good good good")
    vocab = Vocabulary(llama.tokenizer, len(llama.embedding_table), llama.tokenize)
    config = SoftConfig(prompt_len=4, steps=30, lr=0.1, seed=0, progress=False, optimizer="adafactor")
    start, optimizer = continuous_prompt(objective.embedding_table.detach(), vocab.allowed_ids, config)
    assert isinstance(optimizer, Adafactor) and optimizer.param_groups[0]["lr"] == 0.1
    with torch.no_grad():
        start_loss = objective.evaluate(start).loss.item()
    result = soft.run(objective, vocab, config)
    assert -result.score < start_loss - 0.1 and result.config["optimizer"] == "adafactor"
    config = PEZConfig(prompt_len=4, steps=40, lr=0.3, seed=0, progress=False, optimizer="adafactor")
    result = pez.run(objective, vocab, config)
    assert result.history[-1] > result.history[0] and result.config["optimizer"] == "adafactor"


def test_unknown_optimizer_is_an_error(llama):
    objective = LMTargetString(llama, " good")
    vocab = Vocabulary(llama.tokenizer, len(llama.embedding_table), llama.tokenize)
    for run, config in ((pez.run, PEZConfig(optimizer="sgd")), (soft.run, SoftConfig(optimizer="sgd"))):
        with pytest.raises(HardpromptError, match="unknown optimizer 'sgd'; choose from adamw, adafactor"):
            run(objective, vocab, config)


def test_target_string_errors(llama):
    with pytest.raises(HardpromptError, match="empty"):
        LMTargetString(llama, "")
    with pytest.raises(HardpromptError, match="cannot predict"):
        LMTargetString(llama, " good").score_token_ids([])


def test_target_cli_finds_a_prompt_in_the_chat_turn_and_reports_greedy_decoding(chat_lm_dir, tmp_path, capsys):
    out = tmp_path / "target.json"
    args = ["target", "the movie was good", "--model", str(chat_lm_dir), "--instruction", "tell me about it"]
    code = main([*args, "--method", "gcg", "--steps", "3", "--prompt-len", "4", "--device", "cpu", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["method"] == "gcg" and len(result["token_ids"]) <= 4 and result["steps"] == 3
    assert result["config"]["chat"] is True and result["config"]["instruction"] == "tell me about it"
    assert result["config"]["target_nll"] == pytest.approx(-result["score"])
    lm = load_causal_lm(str(chat_lm_dir), device="cpu")
    before, after = lm.chat_turn("tell me about it")
    objective = LMTargetString(lm, "the movie was good", instruction=before, suffix=after)
    assert result["score"] == pytest.approx(objective.score_token_ids(lm.tokenize(result["prompt"])), abs=1e-5)
    assert result["config"]["greedy_says_target"] == objective.says_target(result["token_ids"])
    err = capsys.readouterr().err
    assert "target NLL" in err and "greedy decoding" in err
    plain = tmp_path / "plain.json"
    assert main([*args, "--no-chat", "--steps", "2", "--prompt-len", "3", "--device", "cpu", "--out", str(plain)]) == 0
    assert json.loads(plain.read_text())["config"]["chat"] is False


def test_target_cli_errors_are_one_line(chat_lm_dir, capsys):
    assert main(["target", " ", "--model", str(chat_lm_dir), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == "hardprompt: error: the target text is empty"
    assert main(["target", "good", "--model", str(chat_lm_dir), "--prompt-len", "500", "--device", "cpu"]) == 2
    assert "prompt" in capsys.readouterr().err


# --- data -------------------------------------------------------------------------------------------


def test_load_examples_from_tsv_csv_jsonl(tmp_path):
    (tmp_path / "a.tsv").write_text('sentence\tlabel\n"quoted" text\t1\nplain\t0\n')
    (tmp_path / "a.csv").write_text('sentence,label\n"a, b",1\nplain,0\n')
    (tmp_path / "a.jsonl").write_text('{"sentence": "a b", "label": 1}\n\n{"sentence": "plain", "label": 0}\n')
    assert load_examples(tmp_path / "a.tsv", "sentence")[0] == Example('"quoted" text', "1")
    assert load_examples(tmp_path / "a.csv", "sentence")[0] == Example("a, b", "1")
    assert load_examples(tmp_path / "a.jsonl", "sentence") == [Example("a b", "1"), Example("plain", "0")]


def test_data_errors(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "header.tsv").write_text("text\tlabel\n")
    (tmp_path / "a.tsv").write_text("text\tlabel\nx\t1\n")
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    (tmp_path / "a.xml").write_text("<x/>")
    for name, message in [("empty.tsv", "no examples"), ("header.tsv", "no examples"), ("bad.jsonl", "JSON")]:
        with pytest.raises(HardpromptError, match=message):
            load_examples(tmp_path / name)
    with pytest.raises(HardpromptError, match="no column 'sentence'"):
        load_examples(tmp_path / "a.tsv", "sentence")
    with pytest.raises(HardpromptError, match="not found"):
        load_examples(tmp_path / "missing.tsv")
    with pytest.raises(HardpromptError, match="unknown data format"):
        load_examples(tmp_path / "a.xml")


def test_few_shot_is_balanced_disjoint_and_seeded():
    examples = [Example(f"text {i}", str(i % 2)) for i in range(20)]
    train, holdout = few_shot(examples, 3, ["0", "1"], seed=4)
    assert [e.label for e in train].count("0") == 3 and [e.label for e in holdout].count("1") == 3
    assert not set(train) & set(holdout)
    assert (train, holdout) == few_shot(examples, 3, ["0", "1"], seed=4)
    with pytest.raises(HardpromptError, match="shots need"):
        few_shot(examples, 6, ["0", "1"], seed=0)


# --- tune, checkpoints, transfer, CLI ----------------------------------------------------------------


def test_holdout_checkpoints_score_the_iterate_every_n_steps(llama):
    objective = LMClassification(llama, TASK, EXAMPLES[:2], holdout=EXAMPLES)
    checkpoints = HoldoutCheckpoints(objective, objective.score_token_ids, every=2)
    vocab = Vocabulary(llama.tokenizer, len(llama.embedding_table), llama.tokenize)
    pez.run(checkpoints, vocab, PEZConfig(prompt_len=3, steps=6, seed=0, progress=False))
    assert [step for step, _ in checkpoints.history] == [2, 4, 6]
    assert len(checkpoints.best_ids) == 3
    assert checkpoints.best_score == max(score for _, score in checkpoints.history)
    assert checkpoints.best_score == objective.score_token_ids(checkpoints.best_ids)


def test_tune_reports_seeds_and_is_deterministic(llama):
    settings = TuneSettings(method="pez", prompt_len=3, shots=1, steps=4, holdout_every=2, seeds=(0, 1), progress=False)
    first = tune(llama, EXAMPLES, EXAMPLES, TASK, settings)
    assert [row["seed"] for row in first["seeds"]] == [0, 1]
    for row in first["seeds"]:
        assert row["train_examples"] == 2 and row["holdout_examples"] == 2 and row["steps"] == 4
        objective = LMClassification(llama, TASK, EXAMPLES)
        assert row["valid_accuracy"] == pytest.approx(objective.accuracy(row["token_ids"], EXAMPLES))
    accuracies = [row["valid_accuracy"] for row in first["seeds"]]
    assert first["valid_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert first["valid_accuracy"]["std"] == pytest.approx(torch.tensor(accuracies).std().item())
    again = tune(llama, EXAMPLES, EXAMPLES, TASK, settings)["seeds"]
    timing = {"seconds", "seconds_per_step", "cpu_seconds_per_step"}
    assert [{k: v for k, v in row.items() if k not in timing} for row in again] == [
        {k: v for k, v in row.items() if k not in timing} for row in first["seeds"]
    ]


def test_empty_baseline_equals_evaluate_prompt_of_the_empty_string(llama):
    report = tune(llama, EXAMPLES, EXAMPLES, TASK, TuneSettings(method="empty", shots=1, progress=False))
    assert report["seeds"][0]["prompt"] == ""
    assert report["valid_accuracy"]["mean"] == evaluate_prompt("", llama, EXAMPLES, TASK)["accuracy"]


def test_tune_errors(llama):
    with pytest.raises(HardpromptError, match="unknown method"):
        tune(llama, EXAMPLES, EXAMPLES, TASK, TuneSettings(method="nope"))
    with pytest.raises(HardpromptError, match="validation data is missing"):
        tune(llama, EXAMPLES, [Example("x", "7")], TASK, TuneSettings(method="empty"))


def write_tsv(path: Path, examples: list[Example]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in examples))
    return path


def test_cli_tune_and_evaluate_prompt(llama_dir, tmp_path, capsys):
    data = write_tsv(tmp_path / "data.tsv", EXAMPLES)
    common = ["--model", str(llama_dir), "--valid", str(data), "--text-column", "sentence"]
    common += ["--verbalizer", "0:bad,1:good"]
    out = tmp_path / "run.json"
    argv = ["tune", "--train", str(data), *common, "--prompt-len", "3", "--shots", "1", "--steps", "2"]
    assert main([*argv, "--seeds", "0,1", "--out", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert len(report["seeds"]) == 2 and report["method"] == "pez"
    prompt = report["seeds"][0]["prompt"]
    capsys.readouterr()
    assert main(["evaluate-prompt", prompt, *common]) == 0
    transfer = json.loads(capsys.readouterr().out)
    assert transfer["accuracy"] == pytest.approx(report["seeds"][0]["valid_accuracy"])


def test_cli_tune_records_the_optimizer(llama_dir, tmp_path, capsys):
    data = write_tsv(tmp_path / "data.tsv", EXAMPLES)
    out = tmp_path / "run.json"
    argv = ["tune", "--model", str(llama_dir), "--train", str(data), "--valid", str(data), "--text-column", "sentence"]
    argv += ["--verbalizer", "0:bad,1:good", "--prompt-len", "3", "--shots", "1", "--steps", "2", "--quiet"]
    assert main([*argv, "--method", "soft", "--optimizer", "adafactor", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["method_options"] == {"optimizer": "adafactor"}
    capsys.readouterr()
    for change, message in (
        (["--optimizer", "sgd"], "unknown optimizer 'sgd'"),
        (["--method", "autoprompt-sgd", "--optimizer", "adafactor"], "has no setting(s): optimizer"),
    ):
        assert main([*argv, *change]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--template", "{input} It was"], "{mask}"),
        (["--verbalizer", "0:bad,2:good"], "missing from the verbalizer"),
        (["--text-column", "text"], "no column 'text'"),
        (["--valid", "EMPTY"], "no examples"),
    ],
)
def test_cli_errors_are_one_line(llama_dir, tmp_path, capsys, change, message):
    data = write_tsv(tmp_path / "data.tsv", EXAMPLES)
    (tmp_path / "empty.tsv").write_text("")
    change = [str(tmp_path / "empty.tsv") if item == "EMPTY" else item for item in change]
    argv = ["evaluate-prompt", "x", "--model", str(llama_dir), "--valid", str(data), "--text-column", "sentence"]
    argv += ["--verbalizer", "0:bad,1:good", *change]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


# --- the real embedded model ----------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_short_real_run():
    sst2 = SHARED_DATA / "sst2" / "validation.tsv"
    if not sst2.is_file():
        pytest.skip("shared SST-2 data not present")
    lm = load_causal_lm("smollm2", device="cpu")
    assert lm.embedding_table.shape == (49152, 576)
    examples = load_examples(sst2, "sentence")[:24]
    task = TaskFormat("{input} It was {mask}", parse_verbalizer("0:negative,1:positive"))
    settings = TuneSettings(method="pez", prompt_len=4, shots=2, steps=3, holdout_every=1, fluency=0.2, progress=False)
    report = tune(lm, examples, examples[:8], task, settings)
    row = report["seeds"][0]
    assert row["steps"] == 3 and 0.0 <= row["valid_accuracy"] <= 1.0 and row["prompt"]
    assert len(row["checkpoints"]) == 3
    transfer = evaluate_prompt(row["prompt"], lm, examples[:8], task)
    assert transfer["accuracy"] == pytest.approx(row["valid_accuracy"])


def test_fluency_loss_is_the_fluency_term_and_passes_through_checkpoints(tiny_lm):
    prompts = tiny_lm.embed([[5, 9, 40], [17, 17, 60]])
    pure_task = LMClassification(tiny_lm, TASK, EXAMPLES, fluency=0.0).evaluate(prompts).loss
    mixed = LMClassification(tiny_lm, TASK, EXAMPLES, fluency=0.4)
    fluency = (mixed.evaluate(prompts).loss - 0.6 * pure_task) / 0.4
    torch.testing.assert_close(mixed.fluency_loss(prompts), fluency, atol=1e-5, rtol=1e-4)
    wrapped = HoldoutCheckpoints(mixed, mixed.score_token_ids, every=1)
    torch.testing.assert_close(wrapped.fluency_loss(prompts), fluency, atol=1e-5, rtol=1e-4)


def test_soft_checkpoints_keep_the_continuous_prompt(llama):
    objective = LMClassification(llama, TASK, EXAMPLES[:2], holdout=EXAMPLES)
    checkpoints = HoldoutCheckpoints(
        objective, objective.score_token_ids, every=1, score_embeds=lambda e: objective.accuracy(e, EXAMPLES)
    )
    soft = llama.embed([[5, 9, 40]]) + 0.01
    checkpoints.new_step()
    checkpoints.evaluate(soft)
    torch.testing.assert_close(checkpoints.best_embeds, soft[0])
    assert checkpoints.best_score == objective.accuracy(soft[0], EXAMPLES)


def test_ctrl_c_keeps_the_best_prompt_and_exits_130(llama_dir, tmp_path, monkeypatch):
    calls = {"count": 0}
    original = LMClassification.new_step

    def interrupt_on_third_step(self):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(LMClassification, "new_step", interrupt_on_third_step)
    data = write_tsv(tmp_path / "data.tsv", EXAMPLES)
    out = tmp_path / "run.json"
    argv = ["tune", "--model", str(llama_dir), "--train", str(data), "--valid", str(data)]
    argv += ["--text-column", "sentence", "--verbalizer", "0:bad,1:good", "--shots", "1", "--steps", "10"]
    assert main([*argv, "--prompt-len", "3", "--seeds", "0,1", "--out", str(out), "--quiet"]) == 130
    report = json.loads(out.read_text())
    assert len(report["seeds"]) == 1
    row = report["seeds"][0]
    assert row["interrupted"] and row["steps"] == 2 and len(row["token_ids"]) >= 1
