use super::*;

#[test]
fn backoff_doubles_up_to_its_cap_and_resets_on_success() {
    let mut backoff = Duration::ZERO;
    let mut seen = Vec::new();
    for _ in 0..10 {
        backoff = next_backoff(backoff, false);
        seen.push(backoff);
    }
    assert_eq!(seen[0], BACKOFF_START);
    assert_eq!(seen[1], BACKOFF_START * 2);
    assert_eq!(*seen.last().expect("some"), BACKOFF_MAX);
    assert_eq!(next_backoff(backoff, true), Duration::ZERO);
}
