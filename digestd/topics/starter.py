"""A starter set of topics, written for the kind of papers the sample dumps carry.

How they are built, so that a topic finds what it is about rather than what mentions it:

- Specific phrases ("speculative decoding", "kv cache") count anywhere.
- Words that abstracts use in passing ("benchmark", "training", "multimodal", "agent") count
  only in the title (``title:``) or inside phrases that make them the subject of the paper.
- ``min_score = 2`` on the broad topics: one mention of a term in the abstract (1 point) is not
  enough; a title hit (3 points), two mentions or two different terms are.

They are measured with ``benchmarks/relevance.py`` against a hand-labelled set of seed papers
(``tests/data/relevance``); the README gives the figures.
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
            '"kv cache" OR kv-cache OR "key-value cache" OR kvcache OR "speculative decoding" '
            'OR "speculative sampling" OR "efficient inference" OR "inference efficiency" '
            'OR "inference acceleration" OR "accelerate inference" OR "accelerating inference" '
            'OR "inference latency" OR "inference speed" OR "inference cost" '
            'OR "inference throughput" OR "decoding latency" OR "decoding efficiency" '
            'OR "generation throughput" OR "token generation throughput" OR "llm serving" '
            'OR "model serving" OR "serving system" OR "inference system" OR "inference engine" '
            'OR "weight quantization" OR "post-training quantization" OR low-bit '
            'OR "model compression" OR "token pruning" OR "token dropping" '
            'OR "structured pruning" OR "sparse attention" OR "early exit" OR "layer skipping" '
            'OR "parallel decoding" OR "lossless acceleration" OR "efficient reasoning" '
            'OR "token efficiency" OR "reasoning length" OR "memory footprint" OR speedup '
            # a generic word in the title counts only with the subject nearby
            'OR ((title:inference OR title:serving OR title:accelerat* OR title:efficient '
            'OR title:fast OR title:faster OR title:throughput OR title:quantiz* '
            'OR title:sparsity OR title:sparse OR title:compression) '
            'AND (llm OR llms OR "language model*" OR transformer*) '
            'AND (inference OR decoding OR serving OR latency OR throughput OR speedup))'
        ),
        min_score=3,
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
            'OR "kv compression" OR "kv caching" OR "context memory" OR title:kv'
        ),
        min_score=2,
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
            'OR "speculative jacobi decoding" OR "draft model" OR "draft token*" '
            'OR "token tree" OR ((draft OR drafting OR drafter) AND verif*)'
        ),
        min_score=2,
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
            'OR "video generation" OR "image synthesis" OR "image editing" OR denoising '
            'OR "visual generation" OR "flow matching" OR title:"image tokenizer" '
            'OR title:generation AND (image OR video OR visual)'
        ),
        min_score=2,
    ),
    TopicDefinition(
        slug="multimodal",
        name="Multimodal models",
        description=(
            "Models that combine vision, audio or speech with language: vision-language "
            "models, multimodal LLMs, and their perception and grounding."
        ),
        query=(
            'title:multimodal OR title:multi-modal OR vision-language OR "vision language" '
            'OR vlm OR vlms OR lvlm OR lvlms OR mllm OR mllms OR "multimodal large language" '
            'OR "multimodal llm*" OR "audio language" OR "speech language" OR "audio llm*" '
            'OR "video llm*" OR "video large language" OR "language-image" OR omni-modal '
            'OR title:speech OR title:audio OR title:voice OR title:llava'
        ),
        min_score=2,
    ),
    TopicDefinition(
        slug="agents",
        name="Agents",
        description=(
            "LLM agents and multi-agent systems: planning, tool and function calling, web and "
            "software agents, agent skills."
        ),
        query=(
            'title:agent OR title:agents OR title:agentic OR multi-agent OR "llm agent*" '
            'OR "language model agent*" OR "llm-based agent*" OR "web agent*" '
            'OR "coding agent*" OR "search agent*" OR "gui agent*" OR "agentic workflow*" '
            'OR "agent system*" OR "tool use" OR "tool calling" OR "function calling" '
            'OR "web navigation" OR multi-llm'
        ),
        min_score=2,
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
            'OR "test-time compute" OR "inference-time compute" OR "inference-time scaling" '
            'OR "reasoning model*" OR "long reasoning" OR "reasoning trace*" '
            'OR "reasoning chain*" OR "reasoning path*" OR "mathematical reasoning" '
            'OR "math reasoning" OR overthinking OR "thinking budget" OR title:reasoning '
            'OR title:thinking OR title:think OR ((rlvr OR grpo OR "reinforcement learning") '
            'AND (math* OR reasoning))'
        ),
        min_score=3,
    ),
    TopicDefinition(
        slug="rl",
        name="Reinforcement learning and alignment",
        description=(
            "Reinforcement learning for and from language models: RLHF, RLVR, policy and "
            "preference optimization (PPO, GRPO, DPO), reward models."
        ),
        query=(
            'rlhf OR rlvr OR rlaif OR "policy optimization" OR grpo OR ppo OR dpo '
            'OR "reward model*" OR "preference optimization" OR "reward modeling" '
            'OR "policy gradient" OR "verifiable reward*" OR "preference alignment" '
            'OR "human feedback" OR title:alignment OR title:"reinforcement learning" '
            'OR title:reward* OR title:preference'
        ),
        min_score=2,
    ),
    TopicDefinition(
        slug="evaluation",
        name="Evaluation and benchmarks",
        description=(
            "New benchmarks, evaluation frameworks and protocols, leaderboards, LLM-as-a-judge "
            "and human evaluation."
        ),
        query=(
            'title:benchmark OR title:benchmarking OR title:bench OR title:evaluation '
            'OR title:evaluating OR title:dataset OR title:"empirical study" '
            'OR "we introduce a benchmark" OR "a new benchmark" OR "novel benchmark" '
            'OR "first benchmark" OR "benchmark designed" OR "evaluation framework" '
            'OR "evaluation protocol" OR "evaluation methodolog*" OR leaderboard '
            'OR llm-as-a-judge OR "benchmarking approach"'
        ),
        min_score=2,
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
            '(title:training NOT title:training-free NOT title:"test-time training") '
            'OR title:pretraining OR title:post-training OR title:fine-tuning '
            'OR title:finetuning OR title:"instruction tuning" OR title:distilling '
            'OR title:optimizer OR title:"synthetic data" '
            'OR (title:"scaling law*" NOT title:test-time) '
            'OR (title:parallelism AND training) '
            'OR "distributed training" OR "parallel training" OR "pipeline parallelism" '
            'OR "tensor parallelism" OR "sequence parallelism" OR "large-scale training" '
            'OR "pretraining method" OR "pre-training method" OR "training recipe" '
            'OR "fine-tuning recipe" OR "instruction tuning data" OR "data synthesis" '
            'OR "synthetic data generation"'
        ),
        min_score=2,
    ),
    TopicDefinition(
        slug="retrieval",
        name="Retrieval and RAG",
        description=(
            "Retrieval-augmented generation, retrievers, dense and vector search, document "
            "retrieval."
        ),
        query=(
            '"retrieval-augmented" OR "retrieval augmented" OR rag OR retriever OR retrievers '
            'OR "dense retrieval" OR "vector search" OR "document retrieval" '
            'OR "semantic search" OR "search engine*" OR "generative engine*" '
            'OR "text representation" OR title:retrieval OR title:retrieve'
        ),
        min_score=2,
    ),
    TopicDefinition(
        slug="code",
        name="Code generation",
        description=(
            "Models that write code: code generation, program synthesis, coding agents and "
            "software-engineering tasks."
        ),
        query=(
            'title:code OR title:coding OR title:swe OR title:software OR "program synthesis" '
            'OR swe-bench OR "coding agent*" OR "code llm*" OR "code model*" '
            'OR "software engineering" OR "code generation"'
        ),
        min_score=2,
    ),
)
