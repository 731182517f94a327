# Writes a tiny llama-architecture GGUF with random weights and a real tokenizer, so that llama-server
# runs a model without any download: the tokenizer metadata is copied from the vocab-only model that
# llama.cpp ships under models/. Usage: python3 tiny-model.py <vocab.gguf> <out.gguf>
# (with llama.cpp's gguf-py on PYTHONPATH). The weights are seeded, so the file is the same every time.
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

N_EMBD = 256
N_LAYER = 4
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 768
N_CTX = 4096

# ChatML, so /v1/chat/completions renders messages the same way on every build.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def main(vocab_path: str, out_path: str) -> None:
    vocab = GGUFReader(vocab_path)
    tokens = vocab.fields["tokenizer.ggml.tokens"].contents()
    n_vocab = len(tokens)

    writer = GGUFWriter(out_path, "llama")
    writer.add_name("tollgate-tiny-random")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(0)  # all F32

    for key, field in vocab.fields.items():
        if not key.startswith("tokenizer."):
            continue
        main_type = field.types[0]
        sub_type = field.types[-1] if main_type == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), main_type, sub_type)
    writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(20)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    n_embd_kv = N_EMBD // N_HEAD * N_HEAD_KV
    writer.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones(N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(n_embd_kv, N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(n_embd_kv, N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones(N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", ones(N_EMBD))
    writer.add_tensor("output.weight", weight(n_vocab, N_EMBD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tiny-model.py <vocab.gguf> <out.gguf>")
    main(sys.argv[1], sys.argv[2])
