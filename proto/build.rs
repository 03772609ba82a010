//! Compiles the .proto files with a vendored protoc so a fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=proto");
    // The services' descriptors are embedded for gRPC server reflection (grpcurl).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out.join("billing_descriptor.bin"))
        .compile_protos(&["proto/billing.proto"], &["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out.join("admin_descriptor.bin"))
        // `smsgw admin --json` prints the replies as they are.
        .type_attribute(".smsgw.admin.v1", "#[derive(serde::Serialize)]")
        .compile_protos(&["proto/admin.proto"], &["proto"])?;
    Ok(())
}
