"""Every ONNX backend node test case of a supported operator that does not pass,
with the reason: ``{case name: (outcome, reason)}``.  Outcome "unsupported":
refused at load with ``UnsupportedOperatorError`` (the reason is what that error
says); "fail": loads but gives a wrong answer or raises otherwise.

The conformance test (tests/test_onnx_conformance.py) checks this table both
ways: a case listed here that starts passing, or a case not listed that stops
passing, fails the test.  Written from a run of ``pyinfer.importer.support``
and reviewed: the refusals are float16/bfloat16/float8 and integer inputs to
float-only kernels, opsets before 11, inputs that must be constants (axes,
pads, shapes given as graph inputs make shapes data-dependent), training mode,
and operator forms not implemented (Resize cubic/antialias/axes, 3-d/1-d pooling
and convolution, MaxPool's Indices output).
"""

EXPECTED: dict = {
    'test_and2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and3d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and4d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and_bcast3v1d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and_bcast3v2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and_bcast4v2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and_bcast4v3d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_and_bcast4v4d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_averagepool_1d_default':
        ('unsupported', 'input of rank 3 (2-d spatial, NCHW, only)'),
    'test_averagepool_2d_dilations':
        ('unsupported', 'dilations (2, 2) in average pooling'),
    'test_averagepool_3d_default':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_averagepool_3d_dilations_small':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_batchnorm_epsilon_training_mode':
        ('unsupported', 'training mode (inference only)'),
    'test_batchnorm_example_training_mode':
        ('unsupported', 'training mode (inference only)'),
    'test_cast_BFLOAT16_to_FLOAT':
        ('unsupported', "graph input 'input': element type bfloat16 is not supported"),
    'test_cast_FLOAT16_to_FLOAT4E2M1':
        ('unsupported', 'cast from float16 to float4_e2m1fn'),
    'test_cast_FLOAT16_to_FLOAT8E4M3FN':
        ('unsupported', 'cast from float16 to float8_e4m3fn'),
    'test_cast_FLOAT16_to_FLOAT8E4M3FNUZ':
        ('unsupported', 'cast from float16 to float8_e4m3fnuz'),
    'test_cast_FLOAT16_to_FLOAT8E5M2':
        ('unsupported', 'cast from float16 to float8_e5m2'),
    'test_cast_FLOAT16_to_FLOAT8E5M2FNUZ':
        ('unsupported', 'cast from float16 to float8_e5m2fnuz'),
    'test_cast_FLOAT16_to_INT2':
        ('unsupported', 'cast from float16 to int2'),
    'test_cast_FLOAT16_to_INT4':
        ('unsupported', 'cast from float16 to int4'),
    'test_cast_FLOAT16_to_UINT2':
        ('unsupported', 'cast from float16 to uint2'),
    'test_cast_FLOAT16_to_UINT4':
        ('unsupported', 'cast from float16 to uint4'),
    'test_cast_FLOAT4E2M1_to_FLOAT':
        ('unsupported', "graph input 'input': element type float4_e2m1fn is not supported"),
    'test_cast_FLOAT4E2M1_to_FLOAT16':
        ('unsupported', "graph input 'input': element type float4_e2m1fn is not supported"),
    'test_cast_FLOAT8E4M3FNUZ_to_FLOAT':
        ('unsupported', "graph input 'input': element type float8_e4m3fnuz is not supported"),
    'test_cast_FLOAT8E4M3FNUZ_to_FLOAT16':
        ('unsupported', "graph input 'input': element type float8_e4m3fnuz is not supported"),
    'test_cast_FLOAT8E4M3FN_to_FLOAT':
        ('unsupported', "graph input 'input': element type float8_e4m3fn is not supported"),
    'test_cast_FLOAT8E4M3FN_to_FLOAT16':
        ('unsupported', "graph input 'input': element type float8_e4m3fn is not supported"),
    'test_cast_FLOAT8E5M2FNUZ_to_FLOAT':
        ('unsupported', "graph input 'input': element type float8_e5m2fnuz is not supported"),
    'test_cast_FLOAT8E5M2FNUZ_to_FLOAT16':
        ('unsupported', "graph input 'input': element type float8_e5m2fnuz is not supported"),
    'test_cast_FLOAT8E5M2_to_FLOAT':
        ('unsupported', "graph input 'input': element type float8_e5m2 is not supported"),
    'test_cast_FLOAT8E5M2_to_FLOAT16':
        ('unsupported', "graph input 'input': element type float8_e5m2 is not supported"),
    'test_cast_FLOAT_to_BFLOAT16':
        ('unsupported', 'cast from float32 to bfloat16'),
    'test_cast_FLOAT_to_FLOAT4E2M1':
        ('unsupported', 'cast from float32 to float4_e2m1fn'),
    'test_cast_FLOAT_to_FLOAT8E4M3FN':
        ('unsupported', 'cast from float32 to float8_e4m3fn'),
    'test_cast_FLOAT_to_FLOAT8E4M3FNUZ':
        ('unsupported', 'cast from float32 to float8_e4m3fnuz'),
    'test_cast_FLOAT_to_FLOAT8E5M2':
        ('unsupported', 'cast from float32 to float8_e5m2'),
    'test_cast_FLOAT_to_FLOAT8E5M2FNUZ':
        ('unsupported', 'cast from float32 to float8_e5m2fnuz'),
    'test_cast_FLOAT_to_INT2':
        ('unsupported', 'cast from float32 to int2'),
    'test_cast_FLOAT_to_INT4':
        ('unsupported', 'cast from float32 to int4'),
    'test_cast_FLOAT_to_UINT2':
        ('unsupported', 'cast from float32 to uint2'),
    'test_cast_FLOAT_to_UINT4':
        ('unsupported', 'cast from float32 to uint4'),
    'test_cast_INT2_to_FLOAT':
        ('unsupported', "graph input 'input': element type int2 is not supported"),
    'test_cast_INT2_to_FLOAT16':
        ('unsupported', "graph input 'input': element type int2 is not supported"),
    'test_cast_INT2_to_INT8':
        ('unsupported', "graph input 'input': element type int2 is not supported"),
    'test_cast_INT4_to_FLOAT':
        ('unsupported', "graph input 'input': element type int4 is not supported"),
    'test_cast_INT4_to_FLOAT16':
        ('unsupported', "graph input 'input': element type int4 is not supported"),
    'test_cast_INT4_to_INT8':
        ('unsupported', "graph input 'input': element type int4 is not supported"),
    'test_cast_UINT2_to_FLOAT':
        ('unsupported', "graph input 'input': element type uint2 is not supported"),
    'test_cast_UINT2_to_FLOAT16':
        ('unsupported', "graph input 'input': element type uint2 is not supported"),
    'test_cast_UINT2_to_UINT8':
        ('unsupported', "graph input 'input': element type uint2 is not supported"),
    'test_cast_UINT4_to_FLOAT':
        ('unsupported', "graph input 'input': element type uint4 is not supported"),
    'test_cast_UINT4_to_FLOAT16':
        ('unsupported', "graph input 'input': element type uint4 is not supported"),
    'test_cast_UINT4_to_UINT8':
        ('unsupported', "graph input 'input': element type uint4 is not supported"),
    'test_cast_e8m0_FLOAT16_to_FLOAT8E8M0':
        ('unsupported', 'cast from float16 to float8_e8m0fnu'),
    'test_cast_e8m0_FLOAT8E8M0_to_FLOAT':
        ('unsupported', "graph input 'input': element type float8_e8m0fnu is not supported"),
    'test_cast_e8m0_FLOAT8E8M0_to_FLOAT16':
        ('unsupported', "graph input 'input': element type float8_e8m0fnu is not supported"),
    'test_cast_e8m0_FLOAT_to_FLOAT8E8M0':
        ('unsupported', 'cast from float32 to float8_e8m0fnu'),
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FN':
        ('unsupported', 'cast from float16 to float8_e4m3fn'),
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ':
        ('unsupported', 'cast from float16 to float8_e4m3fnuz'),
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2':
        ('unsupported', 'cast from float16 to float8_e5m2'),
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ':
        ('unsupported', 'cast from float16 to float8_e5m2fnuz'),
    'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN':
        ('unsupported', 'cast from float32 to float8_e4m3fn'),
    'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ':
        ('unsupported', 'cast from float32 to float8_e4m3fnuz'),
    'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2':
        ('unsupported', 'cast from float32 to float8_e5m2'),
    'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ':
        ('unsupported', 'cast from float32 to float8_e5m2fnuz'),
    'test_constant_pad':
        ('unsupported', "input 'pads' must be a constant (an initializer or computable from the model's sh..."),
    'test_constant_pad_axes':
        ('unsupported', "input 'pads' must be a constant (an initializer or computable from the model's sh..."),
    'test_constant_pad_negative_axes':
        ('unsupported', "input 'pads' must be a constant (an initializer or computable from the model's sh..."),
    'test_constantofshape_float_ones':
        ('unsupported', "input 'input' is computed from the values of a graph input, so the output shap"),
    'test_constantofshape_int_shape_zero':
        ('unsupported', "input 'input' is computed from the values of a graph input, so the output shap"),
    'test_constantofshape_int_zeros':
        ('unsupported', "input 'input' is computed from the values of a graph input, so the output shap"),
    'test_convinteger_with_padding':
        ('unsupported', 'ONNX model: ai.onnx opset 10 is not supported (pyinfer imports opsets 11-21, and ...'),
    'test_convinteger_without_padding':
        ('unsupported', 'ONNX model: ai.onnx opset 10 is not supported (pyinfer imports opsets 11-21, and ...'),
    'test_edge_pad':
        ('unsupported', "input 'x' of element type int32 (float32 and float64 only)"),
    'test_equal_string':
        ('unsupported', "graph input 'x': element type object is not supported"),
    'test_equal_string_broadcast':
        ('unsupported', "graph input 'x': element type object is not supported"),
    'test_expand_dim_changed':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_expand_dim_unchanged':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_gelu_default_1_expanded':
        ('unsupported', 'operator CastLike (opset 20) not supported (in the expanded function)'),
    'test_gelu_default_2_expanded':
        ('unsupported', 'operator CastLike (opset 20) not supported (in the expanded function)'),
    'test_gelu_tanh_1_expanded':
        ('unsupported', 'operator CastLike (opset 20) not supported (in the expanded function)'),
    'test_gelu_tanh_2_expanded':
        ('unsupported', 'operator CastLike (opset 20) not supported (in the expanded function)'),
    'test_identity_opt':
        ('unsupported', "graph input 'opt_in': element type 0 is not supported"),
    'test_identity_sequence':
        ('unsupported', "graph input 'x': element type 0 is not supported"),
    'test_max_float16':
        ('unsupported', "element type not supported: node 'maximum' (maximum): input 'data_0' expected flo..."),
    'test_maxpool_1d_default':
        ('unsupported', 'input of rank 3 (2-d spatial, NCHW, only)'),
    'test_maxpool_2d_uint8':
        ('unsupported', "input 'x' of element type uint8 (float32 and float64 only)"),
    'test_maxpool_3d_default':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_maxpool_3d_dilations':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_maxpool_3d_dilations_use_ref_impl':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_maxpool_3d_dilations_use_ref_impl_large':
        ('unsupported', 'input of rank 5 (2-d spatial, NCHW, only)'),
    'test_maxpool_with_argmax_2d_precomputed_pads':
        ('unsupported', 'the Indices output'),
    'test_maxpool_with_argmax_2d_precomputed_strides':
        ('unsupported', 'the Indices output'),
    'test_min_float16':
        ('unsupported', "element type not supported: node 'minimum' (minimum): input 'data_0' expected flo..."),
    'test_not_2d':
        ('unsupported', 'ONNX model: ai.onnx opset 1 is not supported (11-21 only)'),
    'test_not_3d':
        ('unsupported', 'ONNX model: ai.onnx opset 1 is not supported (11-21 only)'),
    'test_not_4d':
        ('unsupported', 'ONNX model: ai.onnx opset 1 is not supported (11-21 only)'),
    'test_or2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or3d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or4d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or_bcast3v1d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or_bcast3v2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or_bcast4v2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or_bcast4v3d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_or_bcast4v4d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_range_bfloat16_type_positive_delta':
        ('unsupported', "graph input 'start': element type bfloat16 is not supported"),
    'test_range_bfloat16_type_positive_delta_expanded':
        ('unsupported', 'operator Ceil (opset 27) not supported (in the expanded function)'),
    'test_range_float16_type_positive_delta':
        ('unsupported', "input 'start' is computed from the values of a graph input, so the output shape d..."),
    'test_range_float16_type_positive_delta_expanded':
        ('unsupported', 'operator Ceil (opset 27) not supported (in the expanded function)'),
    'test_range_float_type_positive_delta':
        ('unsupported', "input 'start' is computed from the values of a graph input, so the output shape d..."),
    'test_range_float_type_positive_delta_expanded':
        ('unsupported', 'operator Ceil (opset 27) not supported (in the expanded function)'),
    'test_range_int32_type_negative_delta':
        ('unsupported', "input 'start' is computed from the values of a graph input, so the output shape d..."),
    'test_range_int32_type_negative_delta_expanded':
        ('unsupported', 'operator Ceil (opset 27) not supported (in the expanded function)'),
    'test_reduce_max_bool_inputs':
        ('unsupported', "input 'data' of element type bool (float32 and float64 only)"),
    'test_reduce_max_do_not_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_max_do_not_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_max_empty_set':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_max_empty_set_bool':
        ('unsupported', "input 'data' of element type bool (float32 and float64 only)"),
    'test_reduce_max_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_max_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_max_negative_axes_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_max_negative_axes_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_mean_default_axes_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_default_axes_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_do_not_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_do_not_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_negative_axes_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_mean_negative_axes_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shap"),
    'test_reduce_min_bool_inputs':
        ('unsupported', "input 'data' of element type bool (float32 and float64 only)"),
    'test_reduce_min_do_not_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_min_do_not_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_min_empty_set':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_min_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_min_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_min_negative_axes_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_min_negative_axes_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_default_axes_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_default_axes_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_do_not_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_do_not_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_empty_axes_input_noop':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_empty_axes_input_noop_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_empty_set':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_empty_set_non_reduced_axis_zero':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_negative_axes_keepdims_example':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reduce_sum_negative_axes_keepdims_random':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_reflect_pad':
        ('unsupported', "input 'x' of element type int32 (float32 and float64 only)"),
    'test_relu_expanded_ver18':
        ('unsupported', 'operator CastLike (opset 18) not supported (in the expanded function)'),
    'test_reshape_allowzero_reordered':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_extended_dims':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_negative_dim':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_negative_extended_dims':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_one_dim':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_reduced_dims':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_reordered_all_dims':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_reordered_last_dims':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_zero_and_negative_dim':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_reshape_zero_dim':
        ('unsupported', "input 'shape' is computed from the values of a graph input, so the output shape d..."),
    'test_resize_downsample_scales_cubic':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_downsample_scales_cubic_A_n0p5_exclude_outside':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_downsample_scales_cubic_align_corners':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_downsample_scales_cubic_antialias':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_downsample_scales_linear':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_downsample_scales_linear_align_corners':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_downsample_scales_linear_antialias':
        ('unsupported', 'antialias'),
    'test_resize_downsample_scales_linear_half_pixel_symmetric':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_downsample_scales_nearest':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_downsample_sizes_cubic':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_downsample_sizes_cubic_antialias':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_downsample_sizes_linear_antialias':
        ('unsupported', 'antialias'),
    'test_resize_downsample_sizes_linear_pytorch_half_pixel':
        ('unsupported', "input 'sizes' must be a constant (an initializer or computable from the model's s..."),
    'test_resize_downsample_sizes_nearest':
        ('unsupported', "input 'sizes' must be a constant (an initializer or computable from the model's s..."),
    'test_resize_downsample_sizes_nearest_not_larger':
        ('unsupported', 'the axes attribute'),
    'test_resize_downsample_sizes_nearest_not_smaller':
        ('unsupported', 'the axes attribute'),
    'test_resize_tf_crop_and_resize':
        ('unsupported', "coordinate_transformation_mode 'tf_crop_and_resize'"),
    'test_resize_tf_crop_and_resize_axes_2_3':
        ('unsupported', 'the axes attribute'),
    'test_resize_tf_crop_and_resize_axes_3_2':
        ('unsupported', 'the axes attribute'),
    'test_resize_tf_crop_and_resize_extrapolation_value':
        ('unsupported', "coordinate_transformation_mode 'tf_crop_and_resize'"),
    'test_resize_upsample_scales_cubic':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_upsample_scales_cubic_A_n0p5_exclude_outside':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_upsample_scales_cubic_align_corners':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_upsample_scales_cubic_asymmetric':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_upsample_scales_linear':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_upsample_scales_linear_align_corners':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_upsample_scales_linear_half_pixel_symmetric':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_upsample_scales_nearest':
        ('unsupported', "input 'scales' must be a constant (an initializer or computable from the model's ..."),
    'test_resize_upsample_scales_nearest_axes_2_3':
        ('unsupported', 'the axes attribute'),
    'test_resize_upsample_scales_nearest_axes_3_2':
        ('unsupported', 'the axes attribute'),
    'test_resize_upsample_sizes_cubic':
        ('unsupported', "mode 'cubic' (nearest and linear only)"),
    'test_resize_upsample_sizes_nearest':
        ('unsupported', "input 'sizes' must be a constant (an initializer or computable from the model's s..."),
    'test_resize_upsample_sizes_nearest_axes_2_3':
        ('unsupported', 'the axes attribute'),
    'test_resize_upsample_sizes_nearest_axes_3_2':
        ('unsupported', 'the axes attribute'),
    'test_resize_upsample_sizes_nearest_ceil_half_pixel':
        ('unsupported', "input 'sizes' must be a constant (an initializer or computable from the model's s..."),
    'test_resize_upsample_sizes_nearest_floor_align_corners':
        ('unsupported', "input 'sizes' must be a constant (an initializer or computable from the model's s..."),
    'test_resize_upsample_sizes_nearest_not_larger':
        ('unsupported', 'the axes attribute'),
    'test_resize_upsample_sizes_nearest_not_smaller':
        ('unsupported', 'the axes attribute'),
    'test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric':
        ('unsupported', "input 'sizes' must be a constant (an initializer or computable from the model's s..."),
    'test_slice':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_default_axes':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_default_steps':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_end_out_of_bounds':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_neg':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_neg_steps':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_negative_axes':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_slice_start_out_of_bounds':
        ('unsupported', "input 'starts' is computed from the values of a graph input, so the output shape ..."),
    'test_split_variable_parts_1d_opset13':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_variable_parts_1d_opset18':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_variable_parts_2d_opset13':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_variable_parts_2d_opset18':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_variable_parts_default_axis_opset13':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_variable_parts_default_axis_opset18':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_zero_size_splits_opset13':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_split_zero_size_splits_opset18':
        ('unsupported', "input 'split' must be a constant (an initializer or computable from the model's s..."),
    'test_squeeze':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's sh..."),
    'test_squeeze_negative_axes':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's sh..."),
    'test_training_dropout':
        ('unsupported', 'training mode (inference only)'),
    'test_training_dropout_default':
        ('unsupported', 'training mode (inference only)'),
    'test_training_dropout_default_mask':
        ('unsupported', 'training mode (inference only)'),
    'test_training_dropout_mask':
        ('unsupported', 'training mode (inference only)'),
    'test_training_dropout_zero_ratio':
        ('unsupported', 'training mode (inference only)'),
    'test_training_dropout_zero_ratio_mask':
        ('unsupported', 'training mode (inference only)'),
    'test_unsqueeze_axis_0':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_unsqueeze_axis_1':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_unsqueeze_axis_2':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_unsqueeze_negative_axes':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_unsqueeze_three_axes':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_unsqueeze_two_axes':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_unsqueeze_unsorted_axes':
        ('unsupported', "input 'axes' must be a constant (an initializer or computable from the model's shape"),
    'test_wrap_pad':
        ('unsupported', "input 'x' of element type int32 (float32 and float64 only)"),
    'test_xor2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor3d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor4d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor_bcast3v1d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor_bcast3v2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor_bcast4v2d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor_bcast4v3d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    'test_xor_bcast4v4d':
        ('unsupported', 'ONNX model: ai.onnx opset 7 is not supported (11-21 only)'),
    # quantization operators (converters/quant.py, the int8 helper's)
    'test_dequantizelinear':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_axis':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_blocked':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_e4m3fn':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_e4m3fn_float16':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_e4m3fn_zero_point':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_e5m2':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_float4e2m1':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_int16':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_int2':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_int4':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_uint16':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_uint2':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dequantizelinear_uint4':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_dynamicquantizelinear_expanded':
        ('unsupported', 'operator not supported by pyinfer'),
    'test_dynamicquantizelinear_max_adjusted_expanded':
        ('unsupported', 'operator not supported by pyinfer'),
    'test_dynamicquantizelinear_min_adjusted_expanded':
        ('unsupported', 'operator not supported by pyinfer'),
    'test_matmulinteger':
        ('unsupported', 'ONNX model: ai.onnx opset 10 is not supported (pyinfer imports opsets 11-21, and ...'),
    'test_qlinearconv':
        ('unsupported', 'ONNX model: ai.onnx opset 10 is not supported (pyinfer imports opsets 11-21, and ...'),
    'test_qlinearmatmul_2D_int8_float16':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_2D_int8_float32':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_2D_uint8_float16':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_2D_uint8_float32':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_3D_int8_float16':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_3D_int8_float32':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_3D_uint8_float16':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_qlinearmatmul_3D_uint8_float32':
        ('unsupported', 'B must be a constant 2-d matrix (a weight)'),
    'test_quantizelinear':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_axis':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_blocked_asymmetric':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_blocked_symmetric':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_e4m3fn':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_e5m2':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_float4e2m1':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_int16':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_int2':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_int4':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_uint16':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_uint2':
        ('unsupported', 'supported for opsets 11-21 only'),
    'test_quantizelinear_uint4':
        ('unsupported', 'supported for opsets 11-21 only'),
}
