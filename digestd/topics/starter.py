"""A starter set of topics, written for the kind of papers the sample dumps carry.

The queries were tuned on the 444 distinct papers of ``samples/seeds``: each one finds a
meaningful share of them without being a catch-all. Words that most abstracts use in passing
("benchmark", "pre-trained", "efficient", "inference") only count inside phrases that make
them the subject of the paper ("a new benchmark", "efficient inference").
"""

from __future__ import annotations

from digestd.topics.match import TopicDefinition

__all__ = ["STARTER_TOPICS"]

STARTER_TOPICS: tuple[TopicDefinition, ...] = (
    TopicDefinition(
        slug="llm-inference",
        name="LLM inference efficiency",
        description=(
            "Making trained models cheaper and faster to run: KV caches, speculative and "
            "parallel decoding, quantization, pruning, sparse attention, early exit, serving "
            "systems."
        ),
        query=(
            '"kv cache" OR kv-cache OR "speculative decoding" OR "speculative sampling" '
            'OR "efficient inference" OR "inference efficiency" OR "inference acceleration" '
            'OR "accelerate inference" OR "inference latency" OR "inference speed" '
            'OR "inference cost" OR "llm serving" OR "model serving" OR "serving system" '
            'OR "inference system" OR "inference engine" OR "weight quantization" '
            'OR "post-training quantization" OR low-bit OR "model compression" '
            'OR "token pruning" OR "structured pruning" OR "sparse attention" OR "early exit" '
            'OR "layer skipping" OR "parallel decoding"'
        ),
    ),
    TopicDefinition(
        slug="kv-cache",
        name="KV cache",
        description=(
            "The key-value cache of transformer decoding: compressing, evicting, quantizing, "
            "offloading and sharing it."
        ),
        query=(
            '"kv cache" OR kv-cache OR "key-value cache" OR "key value cache" OR kvcache '
            'OR "kv compression"'
        ),
    ),
    TopicDefinition(
        slug="speculative-decoding",
        name="Speculative decoding",
        description=(
            "Draft-then-verify decoding: draft models and heads, token trees, speculative "
            "sampling and its theory."
        ),
        query=(
            '"speculative decoding" OR "speculative sampling" OR "speculative inference" '
            'OR "draft model" OR ((draft OR drafting OR drafter) AND verif*)'
        ),
    ),
    TopicDefinition(
        slug="diffusion",
        name="Diffusion and image/video generation",
        description=(
            "Diffusion models (for images, video, text and science), text-to-image and "
            "text-to-video generation, image editing and synthesis."
        ),
        query=(
            'diffusion OR text-to-image OR text-to-video OR "image generation" '
            'OR "video generation" OR "image synthesis" OR "image editing" OR denoising'
        ),
    ),
    TopicDefinition(
        slug="multimodal",
        name="Multimodal models",
        description=(
            "Models that combine vision, audio or speech with language: vision-language "
            "models, multimodal LLMs, and their perception and grounding."
        ),
        query=(
            'multimodal OR multi-modal OR vision-language OR "vision language" OR vlm OR vlms '
            'OR mllm OR mllms OR "audio language" OR "speech language" OR omni-modal'
        ),
    ),
    TopicDefinition(
        slug="agents",
        name="Agents",
        description=(
            "LLM agents and multi-agent systems: planning, tool and function calling, web and "
            "software agents, agent skills."
        ),
        query=(
            'agent OR agents OR agentic OR multi-agent OR "tool use" OR "tool calling" '
            'OR "function calling" OR "web navigation"'
        ),
    ),
    TopicDefinition(
        slug="reasoning",
        name="Reasoning and test-time scaling",
        description=(
            "Reasoning models, chain-of-thought, test-time compute and its budget, and "
            "reinforcement learning for mathematical reasoning."
        ),
        query=(
            '"chain of thought" OR chain-of-thought OR cot OR "test-time scaling" '
            'OR "test-time compute" OR "inference-time scaling" OR "reasoning model" '
            'OR "long reasoning" OR ((reasoning OR reason) AND (math* OR "reinforcement '
            'learning" OR rl OR rlvr OR thinking OR thought*))'
        ),
    ),
    TopicDefinition(
        slug="rl",
        name="Reinforcement learning and alignment",
        description=(
            "Reinforcement learning for and from language models: RLHF, RLVR, policy and "
            "preference optimization (PPO, GRPO, DPO), reward models."
        ),
        query=(
            '"reinforcement learning" OR rlhf OR rlvr OR rlaif OR "policy optimization" '
            'OR grpo OR ppo OR dpo OR "reward model" OR "preference optimization" '
            'OR "reward modeling"'
        ),
    ),
    TopicDefinition(
        slug="evaluation",
        name="Evaluation and benchmarks",
        description=(
            "New benchmarks, evaluation frameworks and protocols, leaderboards, LLM-as-a-judge "
            "and human evaluation."
        ),
        query=(
            '"a benchmark" OR "new benchmark" OR "novel benchmark" OR "comprehensive benchmark" '
            'OR "benchmark for" OR "benchmark designed" OR "benchmark dataset" '
            'OR "benchmark suite" OR "evaluation benchmark" OR "evaluation framework" '
            'OR "evaluation suite" OR "evaluation protocol" OR "evaluation metric*" '
            'OR leaderboard OR llm-as-a-judge OR "human evaluation"'
        ),
    ),
    TopicDefinition(
        slug="training",
        name="Training and optimisation",
        description=(
            "How models are trained: distributed and parallel training, optimizers, scaling "
            "laws, mixed precision, fine-tuning methods (LoRA, instruction tuning, SFT), data "
            "selection."
        ),
        query=(
            '"training efficiency" OR "efficient training" OR "distributed training" '
            'OR "parallel training" OR "training recipe" OR "training dynamics" '
            'OR "training stability" OR "large-scale training" OR "pipeline parallelism" '
            'OR "data parallel" OR "tensor parallelism" OR optimizer OR "learning rate" '
            'OR "scaling law" OR "mixed precision" OR "parameter-efficient" OR lora '
            'OR "instruction tuning" OR "data selection" OR "supervised fine-tuning" '
            'OR "pretraining data" OR "pre-training data" OR "continued pretraining" '
            'OR "continual pre-training"'
        ),
    ),
    TopicDefinition(
        slug="retrieval",
        name="Retrieval and RAG",
        description=(
            "Retrieval-augmented generation, retrievers, dense and vector search, document "
            "retrieval."
        ),
        query=(
            '"retrieval-augmented" OR "retrieval augmented" OR rag OR retriever '
            'OR "dense retrieval" OR "vector search" OR "document retrieval"'
        ),
    ),
    TopicDefinition(
        slug="code",
        name="Code generation",
        description=(
            "Models that write code: code generation, program synthesis, coding agents and "
            "software-engineering tasks."
        ),
        query=(
            '"code generation" OR "software engineering" OR "program synthesis" OR swe-bench '
            'OR "coding agent" OR "code llm" OR "code model*"'
        ),
    ),
)
