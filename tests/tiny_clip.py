"""Tiny random Hugging Face CLIPModels saved with save_pretrained: the independent oracle for CLIP tests."""
import os


def make_tiny_hf_clip(path, *, vision_width=32, vision_layers=2, vision_heads=2, vision_mlp=64, image_size=32,
                      patch_size=8, text_width=32, text_layers=2, text_heads=2, text_mlp=64, vocab_size=49408,
                      context=77, projection_dim=24, seed=0, safe_serialization=True, with_tokenizer=False):
    """Build a random transformers.CLIPModel (fp32, weights scaled up so errors show) and save it to `path`."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=text_width, intermediate_size=text_mlp, num_hidden_layers=text_layers,
                         num_attention_heads=text_heads, vocab_size=vocab_size, max_position_embeddings=context,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=vocab_size - 1,
                         bos_token_id=vocab_size - 2, pad_token_id=0),
        vision_config=dict(hidden_size=vision_width, intermediate_size=vision_mlp, num_hidden_layers=vision_layers,
                           num_attention_heads=vision_heads, image_size=image_size, patch_size=patch_size,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=projection_dim)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():  # HF's init leaves LayerNorms at identity and biases at 0: randomise everything
        for name, p in model.named_parameters():
            if name == "logit_scale":
                continue
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p) if p.ndim == 1 else torch.randn_like(p) * p.shape[-1] ** -0.5)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    if not safe_serialization:  # transformers 5 always writes safetensors: write the legacy pickle by hand
        torch.save(model.state_dict(), os.path.join(path, "pytorch_model.bin"))
        os.remove(os.path.join(path, "model.safetensors"))
    if with_tokenizer:
        from sfr_jax.text.tokenizer import ClipTokenizer
        ClipTokenizer.default().save(path)
    return path
