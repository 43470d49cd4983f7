//! `FUZZ_EXPLAIN=TARGET:FILE cargo test -p deliberate-fuzz --test explain -- --nocapture`
//! prints the events a stream input makes and the client's bytes.

#[test]
fn explain() {
    let Ok(arg) = std::env::var("FUZZ_EXPLAIN") else {
        return;
    };
    let (target, file) = arg.split_once(':').expect("TARGET:FILE");
    let data = std::fs::read(file).expect("input file");
    println!("{}", deliberate_fuzz::stream::explain(target, &data));
}
