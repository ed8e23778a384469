# Shader compilation (included by the Makefile): every variant of every
# shaders/*.comp is compiled by glslc to SPIR-V as a C initializer under
# $(BUILD)/shaders/, which infer/vulkan/shaders.c #includes, so the SPIR-V is
# embedded in the binary.  glslc is a build dependency (make deps).

GLSLC       ?= glslc
GLSLC_FLAGS ?= --target-env=vulkan1.1 -O
SHADER_OUT  := $(BUILD)/shaders
SHADER_H    :=

# $(1) variant name, $(2) source file, $(3) defines
define ponder_shader
$(SHADER_OUT)/$(1).h: shaders/$(2) shaders/common.glsl
	@mkdir -p $(SHADER_OUT)
	$(GLSLC) $(GLSLC_FLAGS) -mfmt=c $(3) -o $$@ shaders/$(2)
SHADER_H += $(SHADER_OUT)/$(1).h
endef

$(eval $(call ponder_shader,matmul_f32_1,matmul.comp,-DW_F32 -DNT=1))
$(eval $(call ponder_shader,matmul_f32_8,matmul.comp,-DW_F32 -DNT=8))
$(eval $(call ponder_shader,matmul_f16_1,matmul.comp,-DW_F16 -DNT=1))
$(eval $(call ponder_shader,matmul_f16_8,matmul.comp,-DW_F16 -DNT=8))
$(eval $(call ponder_shader,matmul_q8_1,matmul.comp,-DW_Q8 -DNT=1))
$(eval $(call ponder_shader,matmul_q8_8,matmul.comp,-DW_Q8 -DNT=8))
$(eval $(call ponder_shader,matmul_q6_1,matmul.comp,-DW_Q6 -DNT=1))
$(eval $(call ponder_shader,matmul_q6_8,matmul.comp,-DW_Q6 -DNT=8))
$(eval $(call ponder_shader,matmul_q4_1,matmul.comp,-DW_Q4 -DNT=1))
$(eval $(call ponder_shader,matmul_q4_8,matmul.comp,-DW_Q4 -DNT=8))
$(eval $(call ponder_shader,matmul_f32_1s,matmul.comp,-DW_F32 -DNT=1 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_f32_8s,matmul.comp,-DW_F32 -DNT=8 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_f16_1s,matmul.comp,-DW_F16 -DNT=1 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_f16_8s,matmul.comp,-DW_F16 -DNT=8 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_q8_1s,matmul.comp,-DW_Q8 -DNT=1 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_q8_8s,matmul.comp,-DW_Q8 -DNT=8 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_q6_1s,matmul.comp,-DW_Q6 -DNT=1 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_q6_8s,matmul.comp,-DW_Q6 -DNT=8 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_q4_1s,matmul.comp,-DW_Q4 -DNT=1 -DSHUFFLE_X))
$(eval $(call ponder_shader,matmul_q4_8s,matmul.comp,-DW_Q4 -DNT=8 -DSHUFFLE_X))
$(eval $(call ponder_shader,rms_norm,rms_norm.comp,))
$(eval $(call ponder_shader,rope,rope.comp,))
$(eval $(call ponder_shader,add,eltwise.comp,-DOP_ADD))
$(eval $(call ponder_shader,swiglu,eltwise.comp,-DOP_SWIGLU))
$(eval $(call ponder_shader,to_f16,eltwise.comp,-DOP_F16))
$(eval $(call ponder_shader,attention_f32,attention.comp,))
$(eval $(call ponder_shader,attention_f16,attention.comp,-DKV_F16))
$(eval $(call ponder_shader,attention_f32_wide,attention.comp,-DVPT=8))
$(eval $(call ponder_shader,attention_f16_wide,attention.comp,-DKV_F16 -DVPT=8))
$(eval $(call ponder_shader,attention_combine,attention.comp,-DCOMBINE))
$(eval $(call ponder_shader,copy_cols,copy_cols.comp,))
$(eval $(call ponder_shader,moe_gather,moe.comp,-DGATHER))
$(eval $(call ponder_shader,moe_combine,moe.comp,-DCOMBINE))
$(eval $(call ponder_shader,quant_x,quant_x.comp,))
$(eval $(call ponder_shader,matmul_int_q8,matmul_int.comp,-DW_Q8))
$(eval $(call ponder_shader,matmul_int_q6,matmul_int.comp,-DW_Q6))
$(eval $(call ponder_shader,matmul_int_q4,matmul_int.comp,-DW_Q4))
$(eval $(call ponder_shader,matmul_int_q8_8,matmul_int.comp,-DW_Q8 -DNT=8))
$(eval $(call ponder_shader,matmul_int_q6_8,matmul_int.comp,-DW_Q6 -DNT=8))
$(eval $(call ponder_shader,matmul_int_q4_8,matmul_int.comp,-DW_Q4 -DNT=8))

$(BUILD)/infer/vulkan/shaders.o: $(SHADER_H)
$(BUILD)/infer/vulkan/shaders.o: CFLAGS += -I$(SHADER_OUT)
