//! One tensor-name map shared by every architecture, in the manner of gguf-py's
//! `TensorNameMap`: each GGUF tensor kind lists every Hugging Face module path that becomes it
//! (with `{bid}` for the block). An architecture says which kinds it has (like gguf-py's
//! `MODEL_TENSORS`); a module path maps to the kind listed LAST in [`TENSOR_MAP`] among those
//! (gguf-py fills a dict in this order, so a later kind overwrites an earlier one:
//! `post_attention_layernorm` is `ffn_norm` for Llama but `post_attention_norm` for Gemma 2).
//!
//! Only the spellings of the architectures ckpt supports are listed. Within a kind the first
//! spelling of a family is the one the GGUF -> Hugging Face export writes.

/// A GGUF tensor kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    TokenEmbd,
    TokenTypes,
    TokenEmbdNorm,
    PosEmbd,
    Output,
    /// EmbeddingGemma's sentence-transformers `2_Dense` projection.
    Dense2Out,
    /// EmbeddingGemma's sentence-transformers `3_Dense` projection.
    Dense3Out,
    OutputNorm,
    RopeFreqs,
    RopeFactorsLong,
    RopeFactorsShort,
    AttnNorm,
    AttnQkv,
    AttnQ,
    AttnK,
    AttnV,
    AttnOut,
    AttnOutNorm,
    AttnPostNorm,
    FfnNorm,
    FfnPreNorm,
    FfnPostNorm,
    FfnUp,
    FfnGate,
    FfnDown,
    AttnQNorm,
    AttnKNorm,
    LayerOutNorm,
    FfnGateInp,
    FfnGateInpShexp,
    FfnExpProbsB,
    FfnGateExps,
    FfnDownExps,
    FfnUpExps,
    FfnGateShexp,
    FfnDownShexp,
    FfnUpShexp,
    ShortConvConv,
    ShortConvInProj,
    ShortConvOutProj,
    // Vision encoders and projectors (mmproj GGUFs, gguf-py's `V_*` tensors).
    VMmInpProj,
    VMmSoftEmbNorm,
    VEncEmbdPatch,
    VEncEmbdPos,
    VEncAttnQ,
    VEncAttnK,
    VEncAttnV,
    VEncInputNorm,
    VEncAttnO,
    VEncPostAttnNorm,
    VEncFfnUp,
    VEncFfnGate,
    VEncFfnDown,
    VPostNorm,
    VPreNorm,
    VMmProj,
    VMmProjFc,
    VMmInpNorm,
    VMmPatchMerger,
    VTokEmbdImgBreak,
    AttnQA,
    AttnQB,
    AttnKvAMqa,
    AttnKB,
    AttnVB,
    AttnQANorm,
    AttnKvANorm,
    NextnEhProj,
    NextnEmbedTokens,
    NextnEnorm,
    NextnHnorm,
    NextnSharedHeadHead,
    NextnSharedHeadNorm,
    AttnSinks,
    VEncAttnQkv,
    VEncEmbdCls,
    VMmProjMlp,
    VEncAttnPostNorm,
}

impl Kind {
    /// The GGUF name (with `{bid}` for block tensors), gguf-py's `TENSOR_NAMES`.
    pub fn gguf(self) -> &'static str {
        match self {
            Kind::TokenEmbd => "token_embd",
            Kind::TokenTypes => "token_types",
            Kind::TokenEmbdNorm => "token_embd_norm",
            Kind::PosEmbd => "position_embd",
            Kind::Output => "output",
            Kind::Dense2Out => "dense_2",
            Kind::Dense3Out => "dense_3",
            Kind::OutputNorm => "output_norm",
            Kind::RopeFreqs => "rope_freqs",
            Kind::RopeFactorsLong => "rope_factors_long",
            Kind::RopeFactorsShort => "rope_factors_short",
            Kind::AttnNorm => "blk.{bid}.attn_norm",
            Kind::AttnQkv => "blk.{bid}.attn_qkv",
            Kind::AttnQ => "blk.{bid}.attn_q",
            Kind::AttnK => "blk.{bid}.attn_k",
            Kind::AttnV => "blk.{bid}.attn_v",
            Kind::AttnOut => "blk.{bid}.attn_output",
            Kind::AttnOutNorm => "blk.{bid}.attn_output_norm",
            Kind::AttnPostNorm => "blk.{bid}.post_attention_norm",
            Kind::FfnNorm => "blk.{bid}.ffn_norm",
            Kind::FfnPreNorm => "blk.{bid}.ffn_norm",
            Kind::FfnPostNorm => "blk.{bid}.post_ffw_norm",
            Kind::FfnUp => "blk.{bid}.ffn_up",
            Kind::FfnGate => "blk.{bid}.ffn_gate",
            Kind::FfnDown => "blk.{bid}.ffn_down",
            Kind::AttnQNorm => "blk.{bid}.attn_q_norm",
            Kind::AttnKNorm => "blk.{bid}.attn_k_norm",
            Kind::LayerOutNorm => "blk.{bid}.layer_output_norm",
            Kind::FfnGateInp => "blk.{bid}.ffn_gate_inp",
            Kind::FfnGateInpShexp => "blk.{bid}.ffn_gate_inp_shexp",
            Kind::FfnExpProbsB => "blk.{bid}.exp_probs_b",
            Kind::FfnGateExps => "blk.{bid}.ffn_gate_exps",
            Kind::FfnDownExps => "blk.{bid}.ffn_down_exps",
            Kind::FfnUpExps => "blk.{bid}.ffn_up_exps",
            Kind::FfnGateShexp => "blk.{bid}.ffn_gate_shexp",
            Kind::FfnDownShexp => "blk.{bid}.ffn_down_shexp",
            Kind::FfnUpShexp => "blk.{bid}.ffn_up_shexp",
            Kind::ShortConvConv => "blk.{bid}.shortconv.conv",
            Kind::ShortConvInProj => "blk.{bid}.shortconv.in_proj",
            Kind::ShortConvOutProj => "blk.{bid}.shortconv.out_proj",
            Kind::VMmInpProj => "mm.input_projection",
            Kind::VMmSoftEmbNorm => "mm.soft_emb_norm",
            Kind::VEncEmbdPatch => "v.patch_embd",
            Kind::VEncEmbdPos => "v.position_embd",
            Kind::VEncAttnQ => "v.blk.{bid}.attn_q",
            Kind::VEncAttnK => "v.blk.{bid}.attn_k",
            Kind::VEncAttnV => "v.blk.{bid}.attn_v",
            Kind::VEncInputNorm => "v.blk.{bid}.ln1",
            Kind::VEncAttnO => "v.blk.{bid}.attn_out",
            Kind::VEncPostAttnNorm => "v.blk.{bid}.ln2",
            Kind::VEncFfnUp => "v.blk.{bid}.ffn_up",
            Kind::VEncFfnGate => "v.blk.{bid}.ffn_gate",
            Kind::VEncFfnDown => "v.blk.{bid}.ffn_down",
            Kind::VPostNorm => "v.post_ln",
            Kind::VPreNorm => "v.pre_ln",
            Kind::VMmProj => "mm.{bid}",
            Kind::VMmProjFc => "mm.model.fc",
            Kind::VMmInpNorm => "mm.input_norm",
            Kind::VMmPatchMerger => "mm.patch_merger",
            Kind::VTokEmbdImgBreak => "v.token_embd.img_break",
            Kind::AttnQA => "blk.{bid}.attn_q_a",
            Kind::AttnQB => "blk.{bid}.attn_q_b",
            Kind::AttnKvAMqa => "blk.{bid}.attn_kv_a_mqa",
            Kind::AttnKB => "blk.{bid}.attn_k_b",
            Kind::AttnVB => "blk.{bid}.attn_v_b",
            Kind::AttnQANorm => "blk.{bid}.attn_q_a_norm",
            Kind::AttnKvANorm => "blk.{bid}.attn_kv_a_norm",
            Kind::NextnEhProj => "blk.{bid}.nextn.eh_proj",
            Kind::NextnEmbedTokens => "blk.{bid}.nextn.embed_tokens",
            Kind::NextnEnorm => "blk.{bid}.nextn.enorm",
            Kind::NextnHnorm => "blk.{bid}.nextn.hnorm",
            Kind::NextnSharedHeadHead => "blk.{bid}.nextn.shared_head_head",
            Kind::NextnSharedHeadNorm => "blk.{bid}.nextn.shared_head_norm",
            Kind::AttnSinks => "blk.{bid}.attn_sinks",
            Kind::VEncAttnQkv => "v.blk.{bid}.attn_qkv",
            Kind::VEncEmbdCls => "v.class_embd",
            Kind::VMmProjMlp => "mm.model.mlp.{bid}",
            Kind::VEncAttnPostNorm => "v.blk.{bid}.attn_post_norm",
        }
    }
}

/// Every kind with the Hugging Face module paths that become it, in gguf-py's order (which
/// decides conflicts, see the module docs).
pub const TENSOR_MAP: &[(Kind, &[&str])] = &[
    (
        Kind::TokenEmbd,
        &[
            "model.embed_tokens",
            "transformer.wte",
            "wte",
            "embeddings.word_embeddings",
            "embed_tokens",
            "embeddings.tok_embeddings",
        ],
    ),
    (Kind::TokenTypes, &["embeddings.token_type_embeddings"]),
    (
        Kind::TokenEmbdNorm,
        &[
            "embeddings.LayerNorm",
            "model.embedding_norm",
            "embeddings.norm",
            "emb_ln",
        ],
    ),
    (
        Kind::PosEmbd,
        &["transformer.wpe", "wpe", "embeddings.position_embeddings"],
    ),
    (Kind::Output, &["lm_head"]),
    (Kind::Dense2Out, &["dense_2_out"]),
    (Kind::Dense3Out, &["dense_3_out"]),
    (
        Kind::OutputNorm,
        &[
            "model.norm",
            "transformer.ln_f",
            "ln_f",
            "norm",
            "final_norm",
        ],
    ),
    (Kind::RopeFreqs, &[]),
    (Kind::RopeFactorsLong, &[]),
    (Kind::RopeFactorsShort, &[]),
    (
        Kind::AttnNorm,
        &[
            "model.layers.{bid}.input_layernorm",
            "transformer.h.{bid}.ln_1",
            "h.{bid}.ln_1",
            "model.layers.{bid}.operator_norm",
            "layers.{bid}.input_layernorm",
            "layers.{bid}.attn_norm",
            "model.layers.{bid}.attention_layernorm",
        ],
    ),
    (
        Kind::AttnQkv,
        &[
            "model.layers.{bid}.self_attn.qkv_proj",
            "transformer.h.{bid}.attn.c_attn",
            "h.{bid}.attn.c_attn",
            "encoder.layers.{bid}.attn.Wqkv",
            "layers.{bid}.attn.Wqkv",
        ],
    ),
    (
        Kind::AttnQ,
        &[
            "model.layers.{bid}.self_attn.q_proj",
            "encoder.layer.{bid}.attention.self.query",
            "layers.{bid}.self_attn.q_proj",
        ],
    ),
    (
        Kind::AttnK,
        &[
            "model.layers.{bid}.self_attn.k_proj",
            "encoder.layer.{bid}.attention.self.key",
            "layers.{bid}.self_attn.k_proj",
        ],
    ),
    (
        Kind::AttnV,
        &[
            "model.layers.{bid}.self_attn.v_proj",
            "encoder.layer.{bid}.attention.self.value",
            "layers.{bid}.self_attn.v_proj",
        ],
    ),
    (
        Kind::AttnOut,
        &[
            "model.layers.{bid}.self_attn.o_proj",
            "transformer.h.{bid}.attn.c_proj",
            "h.{bid}.attn.c_proj",
            "encoder.layer.{bid}.attention.output.dense",
            "model.layers.{bid}.self_attn.out_proj",
            "layers.{bid}.self_attn.o_proj",
            "layers.{bid}.attn.Wo",
            "encoder.layers.{bid}.attn.out_proj",
        ],
    ),
    (
        Kind::AttnOutNorm,
        &[
            "encoder.layer.{bid}.attention.output.LayerNorm",
            "encoder.layers.{bid}.norm1",
        ],
    ),
    (
        Kind::AttnPostNorm,
        &[
            "model.layers.{bid}.post_attention_layernorm",
            "model.layers.{bid}.post_self_attn_layernorm",
            "layers.{bid}.post_attention_layernorm",
        ],
    ),
    (
        Kind::FfnNorm,
        &[
            "transformer.h.{bid}.ln_2",
            "model.layers.{bid}.post_attention_layernorm",
            "h.{bid}.ln_2",
            "model.layers.{bid}.ffn_norm",
            "layers.{bid}.post_attention_layernorm",
            "layers.{bid}.mlp_norm",
            "model.layers.{bid}.feedforward_layernorm",
        ],
    ),
    (
        Kind::FfnPreNorm,
        &[
            "model.layers.{bid}.pre_feedforward_layernorm",
            "layers.{bid}.pre_feedforward_layernorm",
        ],
    ),
    (
        Kind::FfnPostNorm,
        &[
            "model.layers.{bid}.post_feedforward_layernorm",
            "model.layers.{bid}.post_mlp_layernorm",
            "layers.{bid}.post_feedforward_layernorm",
        ],
    ),
    (
        Kind::FfnUp,
        &[
            "transformer.h.{bid}.mlp.c_fc",
            "h.{bid}.mlp.c_fc",
            "model.layers.{bid}.mlp.up_proj",
            "model.layers.{bid}.mlp.gate_up_proj",
            "encoder.layer.{bid}.intermediate.dense",
            "model.layers.{bid}.feed_forward.w3",
            "layers.{bid}.mlp.up_proj",
            "layers.{bid}.mlp.Wi",
            "encoder.layers.{bid}.mlp.fc11",
            "model.layers.{bid}.feed_forward.up_proj",
            "encoder.layers.{bid}.mlp.fc1",
        ],
    ),
    (
        Kind::FfnGate,
        &[
            "model.layers.{bid}.mlp.gate_proj",
            "model.layers.{bid}.feed_forward.w1",
            "layers.{bid}.mlp.gate_proj",
            "encoder.layers.{bid}.mlp.fc12",
            "model.layers.{bid}.feed_forward.gate_proj",
        ],
    ),
    (
        Kind::FfnDown,
        &[
            "transformer.h.{bid}.mlp.c_proj",
            "h.{bid}.mlp.c_proj",
            "model.layers.{bid}.mlp.down_proj",
            "encoder.layer.{bid}.output.dense",
            "model.layers.{bid}.feed_forward.w2",
            "layers.{bid}.mlp.down_proj",
            "layers.{bid}.mlp.Wo",
            "encoder.layers.{bid}.mlp.fc2",
            "model.layers.{bid}.feed_forward.down_proj",
        ],
    ),
    (
        Kind::AttnQNorm,
        &[
            "model.layers.{bid}.self_attn.q_norm",
            "model.layers.{bid}.self_attn.query_layernorm",
            "model.layers.{bid}.self_attn.q_layernorm",
            "layers.{bid}.self_attn.q_norm",
        ],
    ),
    (
        Kind::AttnKNorm,
        &[
            "model.layers.{bid}.self_attn.k_norm",
            "model.layers.{bid}.self_attn.key_layernorm",
            "model.layers.{bid}.self_attn.k_layernorm",
            "layers.{bid}.self_attn.k_norm",
        ],
    ),
    (
        Kind::LayerOutNorm,
        &[
            "encoder.layer.{bid}.output.LayerNorm",
            "encoder.layers.{bid}.norm2",
        ],
    ),
    // Mixture-of-experts kinds. The `experts.*` spellings are the names the converter gives a
    // stacked tensor (per-expert tensors are gathered first, see `arch::moe`).
    (
        Kind::FfnGateInp,
        &[
            "model.layers.{bid}.mlp.gate",
            "model.layers.{bid}.block_sparse_moe.gate",
            "layers.{bid}.feed_forward.gate",
            "model.layers.{bid}.block_sparse_moe.router.layer",
            "model.layers.{bid}.mlp.router",
            "model.layers.{bid}.feed_forward.router",
            "encoder.layers.{bid}.mlp.router.layer",
        ],
    ),
    (
        Kind::FfnGateInpShexp,
        &["model.layers.{bid}.mlp.shared_expert_gate"],
    ),
    (
        Kind::FfnExpProbsB,
        &[
            "model.layers.{bid}.mlp.gate.e_score_correction",
            "model.layers.{bid}.mlp.moe_statics.e_score_correction",
        ],
    ),
    (
        Kind::FfnGateExps,
        &[
            "model.layers.{bid}.mlp.experts.gate_proj",
            "layers.{bid}.feed_forward.experts.w1",
            "model.layers.{bid}.block_sparse_moe.input_linear.gate",
            "model.layers.{bid}.feed_forward.experts.gate_proj",
        ],
    ),
    (
        Kind::FfnDownExps,
        &[
            "model.layers.{bid}.mlp.experts.down_proj",
            "layers.{bid}.feed_forward.experts.w2",
            "model.layers.{bid}.block_sparse_moe.output_linear",
            "model.layers.{bid}.feed_forward.experts.down_proj",
            "encoder.layers.{bid}.mlp.experts.mlp.w2",
        ],
    ),
    (
        Kind::FfnUpExps,
        &[
            "model.layers.{bid}.mlp.experts.up_proj",
            "layers.{bid}.feed_forward.experts.w3",
            "model.layers.{bid}.block_sparse_moe.input_linear.up",
            "model.layers.{bid}.feed_forward.experts.up_proj",
            "encoder.layers.{bid}.mlp.experts.mlp.w1",
        ],
    ),
    (
        Kind::FfnGateShexp,
        &[
            "model.layers.{bid}.mlp.shared_expert.gate_proj",
            "model.layers.{bid}.mlp.shared_experts.gate_proj",
            "model.layers.{bid}.shared_mlp.input_linear.gate",
            "model.layers.{bid}.feed_forward.shared_expert.gate_proj",
        ],
    ),
    (
        Kind::FfnDownShexp,
        &[
            "model.layers.{bid}.mlp.shared_expert.down_proj",
            "model.layers.{bid}.mlp.shared_experts.down_proj",
            "model.layers.{bid}.shared_mlp.output_linear",
            "model.layers.{bid}.feed_forward.shared_expert.down_proj",
        ],
    ),
    (
        Kind::FfnUpShexp,
        &[
            "model.layers.{bid}.mlp.shared_expert.up_proj",
            "model.layers.{bid}.mlp.shared_experts.up_proj",
            "model.layers.{bid}.shared_mlp.input_linear.up",
            "model.layers.{bid}.feed_forward.shared_expert.up_proj",
        ],
    ),
    (Kind::ShortConvConv, &["model.layers.{bid}.conv.conv"]),
    (Kind::ShortConvInProj, &["model.layers.{bid}.conv.in_proj"]),
    (
        Kind::ShortConvOutProj,
        &["model.layers.{bid}.conv.out_proj"],
    ),
    (
        Kind::VMmInpProj,
        &["multi_modal_projector.mm_input_projection"],
    ),
    (
        Kind::VMmSoftEmbNorm,
        &["multi_modal_projector.mm_soft_emb_norm"],
    ),
    (
        Kind::VEncEmbdPatch,
        &[
            "vision_tower.vision_model.embeddings.patch_embedding",
            "model.vision_model.embeddings.patch_embedding",
            "vision_tower.patch_conv",
            "visual.patch_embed.proj",
            "vision_model.patch_embedding.linear",
        ],
    ),
    (
        Kind::VEncEmbdPos,
        &[
            "vision_tower.vision_model.embeddings.position_embedding",
            "model.vision_model.embeddings.position_embedding",
            "visual.pos_embed",
            "vision_model.positional_embedding_vlm",
        ],
    ),
    (
        Kind::VEncAttnQ,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.self_attn.q_proj",
            "model.vision_model.encoder.layers.{bid}.self_attn.q_proj",
            "vision_tower.transformer.layers.{bid}.attention.q_proj",
            "visual.blocks.{bid}.attn.q",
            "vision_model.model.layers.{bid}.self_attn.q_proj",
        ],
    ),
    (
        Kind::VEncAttnK,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.self_attn.k_proj",
            "model.vision_model.encoder.layers.{bid}.self_attn.k_proj",
            "vision_tower.transformer.layers.{bid}.attention.k_proj",
            "visual.blocks.{bid}.attn.k",
            "vision_model.model.layers.{bid}.self_attn.k_proj",
        ],
    ),
    (
        Kind::VEncAttnV,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.self_attn.v_proj",
            "model.vision_model.encoder.layers.{bid}.self_attn.v_proj",
            "vision_tower.transformer.layers.{bid}.attention.v_proj",
            "visual.blocks.{bid}.attn.v",
            "vision_model.model.layers.{bid}.self_attn.v_proj",
        ],
    ),
    (
        Kind::VEncInputNorm,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.layer_norm1",
            "model.vision_model.encoder.layers.{bid}.layer_norm1",
            "vision_tower.transformer.layers.{bid}.attention_norm",
            "visual.blocks.{bid}.norm1",
            "vision_model.model.layers.{bid}.input_layernorm",
        ],
    ),
    (
        Kind::VEncAttnO,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.self_attn.out_proj",
            "model.vision_model.encoder.layers.{bid}.self_attn.out_proj",
            "vision_tower.transformer.layers.{bid}.attention.o_proj",
            "visual.blocks.{bid}.attn.proj",
            "vision_model.model.layers.{bid}.self_attn.o_proj",
        ],
    ),
    (
        Kind::VEncPostAttnNorm,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.layer_norm2",
            "model.vision_model.encoder.layers.{bid}.layer_norm2",
            "vision_tower.transformer.layers.{bid}.ffn_norm",
            "visual.blocks.{bid}.norm2",
            "vision_model.model.layers.{bid}.post_attention_layernorm",
        ],
    ),
    (
        Kind::VEncFfnUp,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.mlp.fc1",
            "model.vision_model.encoder.layers.{bid}.mlp.fc1",
            "vision_tower.transformer.layers.{bid}.feed_forward.up_proj",
            "visual.blocks.{bid}.mlp.fc1",
            "visual.blocks.{bid}.mlp.up_proj",
            "visual.blocks.{bid}.mlp.linear_fc1",
            "vision_model.model.layers.{bid}.mlp.fc1",
        ],
    ),
    (
        Kind::VEncFfnGate,
        &[
            "vision_tower.transformer.layers.{bid}.feed_forward.gate_proj",
            "visual.blocks.{bid}.mlp.gate_proj",
        ],
    ),
    (
        Kind::VEncFfnDown,
        &[
            "vision_tower.vision_model.encoder.layers.{bid}.mlp.fc2",
            "model.vision_model.encoder.layers.{bid}.mlp.fc2",
            "vision_tower.transformer.layers.{bid}.feed_forward.down_proj",
            "visual.blocks.{bid}.mlp.fc2",
            "visual.blocks.{bid}.mlp.down_proj",
            "visual.blocks.{bid}.mlp.linear_fc2",
            "vision_model.model.layers.{bid}.mlp.fc2",
        ],
    ),
    (
        Kind::VPostNorm,
        &[
            "vision_tower.vision_model.post_layernorm",
            "model.vision_model.post_layernorm",
            "visual.merger.ln_q",
            "vision_model.layernorm_post",
        ],
    ),
    (
        Kind::VPreNorm,
        &[
            "vision_tower.vision_model.pre_layrnorm",
            "vision_tower.ln_pre",
            "model.vision_model.pre_layrnorm",
            "vision_model.layernorm_pre",
        ],
    ),
    (
        Kind::VMmProj,
        &[
            "multi_modal_projector.linear_{bid}",
            "visual.merger.mlp.{bid}",
        ],
    ),
    (
        Kind::VMmProjFc,
        &["model.connector.modality_projection.proj"],
    ),
    (Kind::VMmInpNorm, &["multi_modal_projector.norm"]),
    (
        Kind::VMmPatchMerger,
        &["multi_modal_projector.patch_merger.merging_layer"],
    ),
    (Kind::VTokEmbdImgBreak, &[]),
    // Multi-head latent attention (DeepSeek V2/V3). `k_b_proj`/`v_b_proj` are the halves the
    // converter splits `kv_b_proj` into (see `arch::deepseek`).
    (Kind::AttnQA, &["model.layers.{bid}.self_attn.q_a_proj"]),
    (Kind::AttnQB, &["model.layers.{bid}.self_attn.q_b_proj"]),
    (
        Kind::AttnKvAMqa,
        &["model.layers.{bid}.self_attn.kv_a_proj_with_mqa"],
    ),
    (Kind::AttnKB, &["model.layers.{bid}.self_attn.k_b_proj"]),
    (Kind::AttnVB, &["model.layers.{bid}.self_attn.v_b_proj"]),
    (
        Kind::AttnQANorm,
        &["model.layers.{bid}.self_attn.q_a_layernorm"],
    ),
    (
        Kind::AttnKvANorm,
        &["model.layers.{bid}.self_attn.kv_a_layernorm"],
    ),
    // Multi-token-prediction (NextN) layers kept by GLM-4.5 MoE.
    (Kind::NextnEhProj, &["model.layers.{bid}.eh_proj"]),
    (Kind::NextnEmbedTokens, &["model.layers.{bid}.embed_tokens"]),
    (Kind::NextnEnorm, &["model.layers.{bid}.enorm"]),
    (Kind::NextnHnorm, &["model.layers.{bid}.hnorm"]),
    (
        Kind::NextnSharedHeadHead,
        &["model.layers.{bid}.shared_head.head"],
    ),
    (
        Kind::NextnSharedHeadNorm,
        &["model.layers.{bid}.shared_head.norm"],
    ),
    (Kind::AttnSinks, &["model.layers.{bid}.self_attn.sinks"]),
    (Kind::VEncAttnQkv, &["visual.blocks.{bid}.attn.qkv"]),
    (Kind::VEncEmbdCls, &["vision_model.class_embedding"]),
    (
        Kind::VMmProjMlp,
        &["vision_model.vision_adapter.mlp.fc{bid}"],
    ),
    // Listed by gguf-py for Gemma 4 after `v.blk.{bid}.ln2`, so Llama 4's post-attention norm
    // becomes `attn_post_norm` too.
    (
        Kind::VEncAttnPostNorm,
        &["vision_model.model.layers.{bid}.post_attention_layernorm"],
    ),
];

/// The spellings of one kind.
pub fn spellings(kind: Kind) -> &'static [&'static str] {
    TENSOR_MAP
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| *s)
        .unwrap_or(&[])
}

/// Whether module path `base` (no `.weight`/`.bias`) is `pattern` for a block below
/// `block_count` (or for no block when the pattern has no `{bid}`).
fn matches(pattern: &str, base: &str, bid: Option<u32>, block_count: u32) -> bool {
    if pattern.contains("{bid}") {
        match bid {
            Some(b) if b < block_count => base == pattern.replace("{bid}", &b.to_string()),
            _ => false,
        }
    } else {
        base == pattern
    }
}

/// gguf-py's `TensorNameMap.get_type_and_name(key, try_suffixes=(".weight", ".bias"))` for an
/// architecture with these kinds: the exact key first, then with the suffix removed and put back
/// on the GGUF name. GGUF names map to themselves, as in gguf-py.
pub fn map_name(
    kinds: &[Kind],
    hf_name: &str,
    bid: Option<u32>,
    block_count: u32,
) -> Option<String> {
    let lookup = |base: &str| -> Option<Kind> {
        TENSOR_MAP
            .iter()
            .rev()
            .filter(|(k, _)| kinds.contains(k))
            .find(|(k, spellings)| {
                matches(k.gguf(), base, bid, block_count)
                    || spellings.iter().any(|s| matches(s, base, bid, block_count))
            })
            .map(|(k, _)| *k)
    };
    let gguf = |k: Kind| match bid {
        Some(b) => k.gguf().replace("{bid}", &b.to_string()),
        None => k.gguf().to_string(),
    };
    if let Some(k) = lookup(hf_name) {
        return Some(gguf(k));
    }
    for suffix in [".weight", ".bias"] {
        if let Some(base) = hf_name.strip_suffix(suffix) {
            if let Some(k) = lookup(base) {
                return Some(gguf(k) + suffix);
            }
        }
    }
    None
}

/// The (HF module path, GGUF name) pairs the GGUF -> Hugging Face export writes for an
/// architecture: per kind, the override if there is one, else the first spelling starting with
/// one of the family's prefixes that the forward map sends back to this kind. Kinds without such
/// a spelling (generated rope factors) are left out.
pub fn export_names(
    kinds: &[Kind],
    prefixes: &[&str],
    overrides: &[(Kind, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for kind in kinds {
        let chosen = overrides
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, s)| *s)
            .or_else(|| {
                spellings(*kind).iter().copied().find(|s| {
                    prefixes.iter().any(|p| s.starts_with(p)) && {
                        let probe = s.replace("{bid}", "0");
                        let back = map_name(kinds, &probe, Some(0), 1);
                        back.as_deref() == Some(&kind.gguf().replace("{bid}", "0"))
                    }
                })
            });
        if let Some(hf) = chosen {
            out.push((hf, kind.gguf()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_kinds_win_like_gguf_py() {
        let llama = [Kind::AttnNorm, Kind::FfnNorm];
        let gemma2 = [Kind::AttnPostNorm, Kind::FfnPreNorm];
        let hf = "model.layers.2.post_attention_layernorm.weight";
        assert_eq!(
            map_name(&llama, hf, Some(2), 4).as_deref(),
            Some("blk.2.ffn_norm.weight")
        );
        assert_eq!(
            map_name(&gemma2, hf, Some(2), 4).as_deref(),
            Some("blk.2.post_attention_norm.weight")
        );
        // Blocks beyond block_count are not mapped; GGUF names map to themselves.
        assert_eq!(map_name(&llama, hf, Some(4), 4), None);
        assert_eq!(
            map_name(&[Kind::RopeFreqs], "rope_freqs.weight", None, 4).as_deref(),
            Some("rope_freqs.weight")
        );
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (k, _) in TENSOR_MAP {
            assert!(seen.insert(*k), "{k:?} listed twice");
        }
    }
}
