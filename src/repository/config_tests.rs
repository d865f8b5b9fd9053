use super::*;

const GOOD: &str = r#"
max_batch_size = 64
[dynamic_batching]
max_queue_delay_us = 500
preferred_batch_sizes = [64, 16]
[[input]]
name = "input"
datatype = "FP32"
dims = [10]
[[output]]
name = "output"
datatype = "FP32"
dims = [1]
"#;

fn parse(text: &str) -> Result<ModelConfig, RepositoryError> {
    ModelConfig::parse(text, Path::new("models/mlp/model.toml"), "mlp")
}

#[test]
fn parses_the_shipped_shape() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.name, "mlp");
    assert_eq!(c.version, "1");
    assert_eq!(c.model_path, Path::new("models/mlp/model.onnx"));
    assert!(c.batching.dynamic);
    assert_eq!(c.batching.preferred_batch_sizes, vec![16, 64]);
    assert_eq!(c.batching.max_queue_delay, Duration::from_micros(500));
    assert_eq!(c.inputs[0].datatype, DataType::F32);
    assert_eq!(c.instances.count, None);
}

fn error_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn errors_name_file_and_field() {
    let e = error_of(&GOOD.replace("\"FP32\"", "\"FP17\""));
    assert!(e.starts_with("models/mlp/model.toml:"), "{e}");
    assert!(e.contains("input[0].datatype") && e.contains("FP17"), "{e}");

    let e = error_of(&GOOD.replace("[64, 16]", "[128]"));
    assert!(
        e.contains("preferred_batch_sizes") && e.contains("128"),
        "{e}"
    );

    let e = error_of(&GOOD.replace("max_batch_size = 64", "max_batch_size = 0"));
    assert!(e.contains("max_batch_size"), "{e}");

    let e = error_of(&GOOD.replace("dims = [10]", "dims = [0]"));
    assert!(e.contains("input[0].dims"), "{e}");

    let e = error_of(&format!("{GOOD}\nbogus = 1\n"));
    assert!(e.contains("bogus"), "{e}");

    let e = error_of(&GOOD.replace("max_batch_size = 64", ""));
    assert!(e.contains("max_batch_size"), "{e}");

    let scheduling = |extra: &str| {
        GOOD.replace(
            "max_queue_delay_us = 500",
            &format!("max_queue_delay_us = 500\n{extra}"),
        )
    };
    let e = error_of(&scheduling(
        "priority_levels = 2\ndefault_priority_level = 3",
    ));
    assert!(
        e.contains("default_priority_level") && e.contains("1..=2"),
        "{e}"
    );
    let e = error_of(&scheduling("latency_target_ms = -1.0"));
    assert!(e.contains("latency_target_ms"), "{e}");
    let c = parse(&scheduling(
        "latency_target_ms = 2.5\ndefault_timeout_us = 7000",
    ))
    .unwrap();
    assert_eq!(c.batching.latency_target, Some(Duration::from_micros(2500)));
    assert_eq!(
        c.batching.default_timeout,
        Some(Duration::from_micros(7000))
    );
    assert!(!c.batching.shed_beyond_target);
    let c = parse(&scheduling(
        "latency_target_ms = 50\nshed_beyond_target = true",
    ))
    .unwrap();
    assert!(c.batching.shed_beyond_target);
    // Shedding is checked against the target, so it needs one.
    let e = error_of(&scheduling("shed_beyond_target = true"));
    assert!(
        e.contains("shed_beyond_target") && e.contains("latency_target_ms"),
        "{e}"
    );
}

#[test]
fn cuda_options_parse_and_default_to_ort() {
    assert_eq!(parse(GOOD).unwrap().cuda, CudaOptions::default());
    let c = parse(&format!(
        "{GOOD}\n[cuda]\ngpu_mem_limit = 2147483648\narena_extend_strategy = \"same_as_requested\"\n\
         cudnn_conv_algo_search = \"heuristic\"\ncudnn_conv_use_max_workspace = false\nuse_tf32 = true\nio_binding = false\n"
    ))
    .unwrap();
    assert_eq!(
        c.cuda,
        CudaOptions {
            gpu_mem_limit: Some(2 << 30),
            arena_extend_strategy: Some(ArenaExtend::SameAsRequested),
            cudnn_conv_algo_search: Some(ConvAlgoSearch::Heuristic),
            cudnn_conv_use_max_workspace: Some(false),
            use_tf32: Some(true),
            io_binding: false,
        }
    );
    assert!(CudaOptions::default().io_binding);
    let c = parse(&format!("{GOOD}\n[cuda]\nuse_tf32 = false\n")).unwrap();
    assert_eq!(c.cuda.use_tf32, Some(false));
    assert_eq!(c.cuda.gpu_mem_limit, None);
}

#[test]
fn cuda_option_errors_name_file_and_field() {
    let cuda = |body: &str| error_of(&format!("{GOOD}\n[cuda]\n{body}\n"));
    let e = cuda("gpu_mem_limit = 0");
    assert!(e.starts_with("models/mlp/model.toml:"), "{e}");
    assert!(e.contains("cuda.gpu_mem_limit"), "{e}");
    let e = cuda("gpu_mem_limit = -1");
    assert!(
        e.starts_with("models/mlp/model.toml:") && e.contains("gpu_mem_limit"),
        "{e}"
    );
    let e = cuda("arena_extend_strategy = \"kSameAsRequested\"");
    assert!(
        e.contains("cuda.arena_extend_strategy") && e.contains("kSameAsRequested"),
        "{e}"
    );
    let e = cuda("cudnn_conv_algo_search = \"fast\"");
    assert!(
        e.contains("cuda.cudnn_conv_algo_search") && e.contains("fast"),
        "{e}"
    );
    let e = cuda("use_tf32 = \"yes\"");
    assert!(e.contains("use_tf32"), "{e}");
    let e = cuda("enable_cuda_graph = true");
    assert!(e.contains("enable_cuda_graph"), "{e}");
}

#[test]
fn without_dynamic_batching_requests_run_alone() {
    let text = GOOD.replace(
        "[dynamic_batching]\nmax_queue_delay_us = 500\npreferred_batch_sizes = [64, 16]\n",
        "",
    );
    let c = parse(&text).unwrap();
    assert!(!c.batching.dynamic);
    assert_eq!(c.batching.max_queue_rows, DEFAULT_QUEUE_ROWS);
}
