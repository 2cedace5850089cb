//! Any bytes through parse → instructions → expansion → lowering → checks: diagnostics only,
//! never a panic, hang or blow-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_frontend::lower::{BuildOptions, NoResolver, lower};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (ast, _) = strata_frontend::parser::parse(&text);
    let _ = strata_frontend::parser::dump::to_json(&ast);
    for node in &ast.children {
        let _ = strata_frontend::instructions::parse_instruction(node);
    }
    let opts = BuildOptions {
        all_stages: true,
        ..BuildOptions::default()
    };
    let _ = lower(&text, &opts, &NoResolver);
    let lex = strata_frontend::shell::Lexer::new('\\');
    let env: Vec<(String, String)> = vec![("A".into(), "a b".into())];
    let _ = lex.process_word(&text, &env);
    let _ = lex.process_words(&text, &env);
});
