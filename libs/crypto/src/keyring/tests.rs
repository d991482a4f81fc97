//! Unit tests of the key ring: envelope encryption, tampering, AAD binding, rotation, limits.

use std::collections::HashSet;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};

use super::*;

fn master(id: &str) -> MasterKey {
    MasterKey::generate(id)
}

/// A ring under a fresh master with one active data key.
fn ring() -> KeyRing {
    let ring = KeyRing::new(master("mk-1"), vec![]);
    let k = ring.new_data_key();
    ring.activate(k.id).unwrap();
    ring
}

fn aad() -> Aad {
    Aad::new(Uuid::from_u128(0x0123), Uuid::from_u128(0x4567))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

// --- the AES-256-GCM primitive -------------------------------------------------------------------

/// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 13–16 (256-bit keys),
/// as also used in NIST SP 800-38D validation.
#[test]
fn aes_256_gcm_matches_the_gcm_spec_known_answers() {
    struct Kat {
        name: &'static str,
        key: &'static str,
        iv: &'static str,
        aad: &'static str,
        pt: &'static str,
        ct: &'static str,
        tag: &'static str,
    }
    let p64 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
               1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    let c64 = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
               8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
    let k = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    let zero_key = "0000000000000000000000000000000000000000000000000000000000000000";
    let kats = [
        Kat {
            name: "TC13",
            key: zero_key,
            iv: "000000000000000000000000",
            aad: "",
            pt: "",
            ct: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b",
        },
        Kat {
            name: "TC14",
            key: zero_key,
            iv: "000000000000000000000000",
            aad: "",
            pt: "00000000000000000000000000000000",
            ct: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919",
        },
        Kat {
            name: "TC15",
            key: k,
            iv: "cafebabefacedbaddecaf888",
            aad: "",
            pt: p64,
            ct: c64,
            tag: "b094dac5d93471bdec1a502270e3cc6c",
        },
        Kat {
            name: "TC16",
            key: k,
            iv: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            pt: &p64[..120],
            ct: &c64[..120],
            tag: "76fc6ece0f4e1768cddf8853bb2d551b",
        },
    ];
    for kat in kats {
        let key: [u8; 32] = unhex(kat.key).try_into().unwrap();
        let cipher = cipher_for(&key);
        let iv: [u8; 12] = unhex(kat.iv).try_into().unwrap();
        let nonce = Nonce::<Aes256Gcm>::from(iv);
        let (aad, pt) = (unhex(kat.aad), unhex(kat.pt));
        let sealed = cipher.encrypt(&nonce, Payload { msg: &pt, aad: &aad }).unwrap();
        let expected = [unhex(kat.ct), unhex(kat.tag)].concat();
        assert_eq!(hex::encode(&sealed), hex::encode(&expected), "{}", kat.name);
        let opened = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(opened, pt, "{}", kat.name);
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            cipher.decrypt(&nonce, Payload { msg: &bad, aad: &aad }).is_err(),
            "{}",
            kat.name
        );
    }
}

// --- round trip and blob format --------------------------------------------------------------------

#[test]
fn round_trip_returns_the_plaintext() {
    let ring = ring();
    for plaintext in [&b""[..], b"x", b"Nguyen Van A, 0101234567", &[0xffu8; 10_000][..]] {
        let blob = ring.encrypt(&aad(), plaintext).unwrap();
        assert_eq!(ring.decrypt(&aad(), &blob).unwrap(), plaintext);
    }
}

#[test]
fn blob_has_magic_version_key_id_and_fixed_overhead() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"hello").unwrap();
    let id = ring.active_data_key_id().unwrap();
    assert_eq!(BLOB_OVERHEAD, 48);
    assert_eq!(blob.len(), 5 + BLOB_OVERHEAD);
    assert_eq!(&blob[..3], b"ETX");
    assert_eq!(blob[3], 1);
    assert_eq!(&blob[4..20], id.as_bytes());
    assert_eq!(KeyRing::key_id_of(&blob).unwrap(), id);
    assert!(
        !blob.windows(5).any(|w| w == b"hello"),
        "plaintext visible in the blob"
    );
}

/// Pins the on-disk format: a blob assembled by hand from the documented layout and AAD decrypts.
#[test]
fn blob_format_matches_the_documented_layout() {
    let m = master("mk-1");
    let ring = KeyRing::new(m.clone(), vec![]);
    let key = [7u8; 32];
    let id = Uuid::from_u128(0xfeed);
    ring.load(&wrap(&m, id, &key)).unwrap();

    let nonce = [9u8; 12];
    let mut aad_bytes = b"etxhub/record/v1\x00\x01".to_vec();
    aad_bytes.extend_from_slice(aad().org_id.as_bytes());
    aad_bytes.extend_from_slice(aad().record_id.as_bytes());
    aad_bytes.extend_from_slice(id.as_bytes());
    let sealed = cipher_for(&key)
        .encrypt(
            &Nonce::<Aes256Gcm>::from(nonce),
            Payload {
                msg: b"pinned",
                aad: &aad_bytes,
            },
        )
        .unwrap();
    let blob = [&b"ETX\x01"[..], id.as_bytes(), &nonce, &sealed].concat();
    assert_eq!(ring.decrypt(&aad(), &blob).unwrap(), b"pinned");
}

/// Pins the wrapped-key format the same way.
#[test]
fn wrapped_key_format_matches_the_documented_layout() {
    let m = master("mk-1");
    let ring = KeyRing::new(m.clone(), vec![]);
    let id = Uuid::from_u128(0xbeef);
    let nonce = [3u8; 12];
    let mut aad_bytes = b"etxhub/data-key/v1\x00mk-1\x00".to_vec();
    aad_bytes.extend_from_slice(id.as_bytes());
    let sealed = m
        .cipher()
        .encrypt(
            &Nonce::<Aes256Gcm>::from(nonce),
            Payload {
                msg: &[5u8; 32],
                aad: &aad_bytes,
            },
        )
        .unwrap();
    let k = WrappedDataKey {
        id,
        master_key_id: "mk-1".into(),
        wrapped: [&nonce[..], &sealed].concat(),
    };
    ring.load(&k).unwrap();
    ring.activate(id).unwrap();
    let blob = ring.encrypt(&aad(), b"x").unwrap();
    let other = KeyRing::new(master("mk-2"), vec![]);
    other.load(&wrap(&other.active_master, id, &[5u8; 32])).unwrap();
    assert_eq!(
        other.decrypt(&aad(), &blob).unwrap(),
        b"x",
        "same key bytes decrypt"
    );
}

#[test]
fn two_encryptions_of_the_same_plaintext_differ() {
    let ring = ring();
    let a = ring.encrypt(&aad(), b"same").unwrap();
    let b = ring.encrypt(&aad(), b"same").unwrap();
    assert_ne!(a, b);
    assert_ne!(a[20..32], b[20..32], "nonces must differ");
    let nonces: HashSet<Vec<u8>> = (0..1000)
        .map(|_| ring.encrypt(&aad(), b"same").unwrap()[20..32].to_vec())
        .collect();
    assert_eq!(nonces.len(), 1000);
}

// --- tampering and AAD binding ---------------------------------------------------------------------

#[test]
fn tampered_ciphertext_fails() {
    let ring = ring();
    let mut blob = ring.encrypt(&aad(), b"some sensitive value").unwrap();
    blob[HEADER_LEN + NONCE_LEN + 3] ^= 0x01;
    assert_eq!(ring.decrypt(&aad(), &blob), Err(CryptoError::Decrypt));
}

#[test]
fn tampered_tag_fails() {
    let ring = ring();
    let mut blob = ring.encrypt(&aad(), b"some sensitive value").unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0x80;
    assert_eq!(ring.decrypt(&aad(), &blob), Err(CryptoError::Decrypt));
}

#[test]
fn tampered_nonce_fails() {
    let ring = ring();
    let mut blob = ring.encrypt(&aad(), b"some sensitive value").unwrap();
    blob[HEADER_LEN] ^= 0x01;
    assert_eq!(ring.decrypt(&aad(), &blob), Err(CryptoError::Decrypt));
}

#[test]
fn tampered_header_fails() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"v").unwrap();
    let mut magic = blob.clone();
    magic[0] = b'X';
    assert!(matches!(
        ring.decrypt(&aad(), &magic),
        Err(CryptoError::Malformed(_))
    ));
    let mut version = blob.clone();
    version[3] = 2;
    assert!(matches!(
        ring.decrypt(&aad(), &version),
        Err(CryptoError::Malformed(_))
    ));
    let mut key_id = blob.clone();
    key_id[10] ^= 0x01;
    let changed = Uuid::from_slice(&key_id[4..20]).unwrap();
    assert_eq!(
        ring.decrypt(&aad(), &key_id),
        Err(CryptoError::UnknownDataKey(changed))
    );
}

#[test]
fn blob_pointed_at_another_loaded_key_fails() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"v").unwrap();
    let other = ring.new_data_key();
    let mut moved = blob.clone();
    moved[4..20].copy_from_slice(other.id.as_bytes());
    assert_eq!(ring.decrypt(&aad(), &moved), Err(CryptoError::Decrypt));
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"0101234567").unwrap();
    for byte in 0..blob.len() {
        for bit in 0..8 {
            let mut bad = blob.clone();
            bad[byte] ^= 1 << bit;
            assert!(
                ring.decrypt(&aad(), &bad).is_err(),
                "flip at byte {byte} bit {bit} accepted"
            );
        }
    }
}

#[test]
fn truncated_or_extended_blobs_fail_without_panicking() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"value").unwrap();
    for len in 0..blob.len() {
        let err = ring.decrypt(&aad(), &blob[..len]).unwrap_err();
        let expected_kind = if len < BLOB_OVERHEAD {
            matches!(err, CryptoError::Malformed(_))
        } else {
            err == CryptoError::Decrypt
        };
        assert!(expected_kind, "len {len}: {err:?}");
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(ring.decrypt(&aad(), &longer), Err(CryptoError::Decrypt));
}

#[test]
fn blob_decrypted_with_another_org_fails() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"v").unwrap();
    let other_org = Aad {
        org_id: Uuid::from_u128(0x9999),
        ..aad()
    };
    assert_eq!(ring.decrypt(&other_org, &blob), Err(CryptoError::Decrypt));
}

#[test]
fn blob_decrypted_with_another_record_fails() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"v").unwrap();
    let other_record = Aad {
        record_id: Uuid::from_u128(0x9999),
        ..aad()
    };
    assert_eq!(ring.decrypt(&other_record, &blob), Err(CryptoError::Decrypt));
}

#[test]
fn blob_decrypted_with_org_and_record_swapped_fails() {
    let ring = ring();
    let blob = ring.encrypt(&aad(), b"v").unwrap();
    let swapped = Aad::new(aad().record_id, aad().org_id);
    assert_eq!(ring.decrypt(&swapped, &blob), Err(CryptoError::Decrypt));
}

#[test]
fn key_id_of_rejects_malformed_headers() {
    for blob in [&b""[..], b"ETX", &[0u8; 47][..], &[b'E'; 200][..]] {
        assert!(
            matches!(KeyRing::key_id_of(blob), Err(CryptoError::Malformed(_))),
            "{blob:?}"
        );
    }
    let mut blob = vec![0u8; BLOB_OVERHEAD];
    blob[..4].copy_from_slice(b"ETX\x01");
    blob[4..20].copy_from_slice(Uuid::from_u128(42).as_bytes());
    assert_eq!(KeyRing::key_id_of(&blob), Ok(Uuid::from_u128(42)));
}

// --- data keys ---------------------------------------------------------------------------------

#[test]
fn encrypt_without_an_active_key_fails_and_asks_for_rotation() {
    let ring = KeyRing::new(master("mk-1"), vec![]);
    assert!(ring.needs_rotation());
    assert_eq!(ring.active_data_key_id(), None);
    assert_eq!(ring.encrypt(&aad(), b"v"), Err(CryptoError::NoActiveDataKey));
}

#[test]
fn new_data_key_is_loaded_but_not_active() {
    let ring = KeyRing::new(master("mk-1"), vec![]);
    let k = ring.new_data_key();
    assert!(ring.has_data_key(k.id));
    assert_eq!(ring.active_data_key_id(), None);
    assert_eq!(k.master_key_id, "mk-1");
    assert_eq!(k.wrapped.len(), 60);
    ring.activate(k.id).unwrap();
    assert_eq!(ring.active_data_key_id(), Some(k.id));
    assert!(!ring.needs_rotation());
}

#[test]
fn activating_an_unloaded_key_fails() {
    let ring = KeyRing::new(master("mk-1"), vec![]);
    let id = Uuid::from_u128(7);
    assert_eq!(ring.activate(id), Err(CryptoError::UnknownDataKey(id)));
    assert!(!ring.has_data_key(id));
}

#[test]
fn data_key_rotation_keeps_old_blobs_readable_and_uses_the_new_key() {
    let ring = ring();
    let key1 = ring.active_data_key_id().unwrap();
    let old = ring.encrypt(&aad(), b"old").unwrap();

    let k2 = ring.new_data_key();
    assert_eq!(
        KeyRing::key_id_of(&ring.encrypt(&aad(), b"x").unwrap()).unwrap(),
        key1,
        "not yet active"
    );
    ring.activate(k2.id).unwrap();
    let new = ring.encrypt(&aad(), b"new").unwrap();

    assert_ne!(k2.id, key1);
    assert_eq!(KeyRing::key_id_of(&old).unwrap(), key1);
    assert_eq!(KeyRing::key_id_of(&new).unwrap(), k2.id);
    assert_eq!(ring.decrypt(&aad(), &old).unwrap(), b"old");
    assert_eq!(ring.decrypt(&aad(), &new).unwrap(), b"new");
}

#[test]
fn blob_whose_key_is_not_loaded_reports_its_id_and_decrypts_after_loading() {
    let m = master("mk-1");
    let writer = KeyRing::new(m.clone(), vec![]);
    let stored = writer.new_data_key();
    writer.activate(stored.id).unwrap();
    let blob = writer.encrypt(&aad(), b"v").unwrap();

    let reader = KeyRing::new(m, vec![]);
    assert_eq!(
        reader.decrypt(&aad(), &blob),
        Err(CryptoError::UnknownDataKey(stored.id))
    );
    reader.load(&stored).unwrap();
    assert_eq!(reader.decrypt(&aad(), &blob).unwrap(), b"v");
}

#[test]
fn load_is_idempotent() {
    let m = master("mk-1");
    let writer = KeyRing::new(m.clone(), vec![]);
    let stored = writer.new_data_key();
    let reader = KeyRing::new(m, vec![]);
    reader.load(&stored).unwrap();
    reader.load(&stored).unwrap();
    writer.load(&stored).unwrap();
    assert!(reader.has_data_key(stored.id));
}

#[test]
fn load_refuses_a_different_key_under_an_id_already_loaded() {
    let ring = KeyRing::new(master("mk-1"), vec![]);
    let stored = ring.new_data_key();
    let impostor = wrap(&ring.active_master, stored.id, &[1u8; 32]);
    assert!(matches!(ring.load(&impostor), Err(CryptoError::InvalidKey(_))));
}

#[test]
fn loading_a_key_wrapped_under_an_unknown_master_fails() {
    let other = KeyRing::new(master("mk-other"), vec![]);
    let stored = other.new_data_key();
    let ring = KeyRing::new(master("mk-1"), vec![]);
    assert_eq!(
        ring.load(&stored),
        Err(CryptoError::UnknownMasterKey("mk-other".into()))
    );
    assert_eq!(
        ring.rewrap(&stored),
        Err(CryptoError::UnknownMasterKey("mk-other".into()))
    );
}

#[test]
fn loading_a_key_wrapped_under_another_master_with_the_same_id_fails() {
    let stored = KeyRing::new(master("mk-1"), vec![]).new_data_key();
    let ring = KeyRing::new(master("mk-1"), vec![]);
    assert_eq!(ring.load(&stored), Err(CryptoError::Decrypt));
}

#[test]
fn tampered_or_relabelled_wrapped_keys_fail_to_load() {
    let ring = KeyRing::new(master("mk-1"), vec![master("mk-0")]);
    let stored = KeyRing::new(ring.masters["mk-1"].clone(), vec![]).new_data_key();
    for i in 0..stored.wrapped.len() {
        let mut bad = stored.clone();
        bad.wrapped[i] ^= 0x01;
        assert_eq!(ring.load(&bad), Err(CryptoError::Decrypt), "byte {i}");
    }
    let relabelled = WrappedDataKey {
        id: Uuid::new_v4(),
        ..stored.clone()
    };
    assert_eq!(ring.load(&relabelled), Err(CryptoError::Decrypt));
    let other_master = WrappedDataKey {
        master_key_id: "mk-0".into(),
        ..stored.clone()
    };
    assert_eq!(ring.load(&other_master), Err(CryptoError::Decrypt));
    for len in [0, 59, 61] {
        let mut wrong = stored.clone();
        wrong.wrapped.resize(len, 0);
        assert!(
            matches!(ring.load(&wrong), Err(CryptoError::Malformed(_))),
            "len {len}"
        );
    }
    ring.load(&stored).unwrap();
}

// --- master keys -------------------------------------------------------------------------------

#[test]
fn master_key_rotation_rewraps_keys_so_a_ring_without_the_old_master_decrypts_old_data() {
    let old_master = master("mk-2025");
    let new_master = master("mk-2026");

    let before = KeyRing::new(old_master.clone(), vec![]);
    let stored = before.new_data_key();
    before.activate(stored.id).unwrap();
    let blob = before.encrypt(&aad(), b"written under the old master").unwrap();

    // The rotation job: new master active, old kept to unwrap; rewrap every stored key.
    let during = KeyRing::new(new_master.clone(), vec![old_master.clone()]);
    assert_eq!(during.active_master_id(), "mk-2026");
    let rewrapped = during.rewrap(&stored).unwrap();
    assert_eq!(rewrapped.id, stored.id);
    assert_eq!(rewrapped.master_key_id, "mk-2026");
    assert_ne!(rewrapped.wrapped, stored.wrapped);
    during.load(&stored).unwrap();
    during.load(&rewrapped).unwrap();

    // After: the old master is gone.
    let after = KeyRing::new(new_master, vec![]);
    assert_eq!(
        after.load(&stored),
        Err(CryptoError::UnknownMasterKey("mk-2025".into()))
    );
    after.load(&rewrapped).unwrap();
    assert_eq!(
        after.decrypt(&aad(), &blob).unwrap(),
        b"written under the old master"
    );
}

#[test]
fn new_data_keys_are_wrapped_under_the_active_master_only() {
    let ring = KeyRing::new(master("mk-new"), vec![master("mk-old")]);
    assert_eq!(ring.new_data_key().master_key_id, "mk-new");
}

#[test]
fn rewrap_does_not_need_the_key_loaded_or_change_the_ring() {
    let m = master("mk-1");
    let stored = KeyRing::new(m.clone(), vec![]).new_data_key();
    let ring = KeyRing::new(master("mk-2"), vec![m]);
    let rewrapped = ring.rewrap(&stored).unwrap();
    assert!(!ring.has_data_key(stored.id));
    ring.load(&rewrapped).unwrap();
    assert!(ring.has_data_key(stored.id));
}

#[test]
fn active_master_wins_over_a_previous_key_with_the_same_id() {
    let active = master("mk-1");
    let stored = KeyRing::new(active.clone(), vec![]).new_data_key();
    let ring = KeyRing::new(active, vec![master("mk-1")]);
    ring.load(&stored).unwrap();
}

#[test]
fn try_new_refuses_two_different_masters_with_one_id() {
    let active = master("mk-1");
    assert!(matches!(
        KeyRing::try_new(active.clone(), vec![master("mk-0"), master("mk-0")]),
        Err(CryptoError::InvalidKey(_))
    ));
    assert!(matches!(
        KeyRing::try_new(active.clone(), vec![master("mk-1")]),
        Err(CryptoError::InvalidKey(_))
    ));
    let ok = KeyRing::try_new(active.clone(), vec![active.clone(), master("mk-0")]).unwrap();
    assert_eq!(ok.active_master_id(), "mk-1");
}

// --- use limits ----------------------------------------------------------------------------------

#[test]
fn needs_rotation_flips_at_the_limit_and_encrypt_stops_at_the_hard_limit() {
    let ring = KeyRing::new(master("mk-1"), vec![]).with_limits(3, 5);
    let k = ring.new_data_key();
    ring.activate(k.id).unwrap();
    for n in 1..=5u64 {
        assert_eq!(ring.needs_rotation(), n > 3, "before encryption {n}");
        ring.encrypt(&aad(), b"v").unwrap();
        assert_eq!(ring.active_data_key_uses(), Some(n));
    }
    assert!(ring.needs_rotation());
    assert_eq!(
        ring.encrypt(&aad(), b"v"),
        Err(CryptoError::DataKeyExhausted(k.id))
    );
    assert_eq!(
        ring.active_data_key_uses(),
        Some(5),
        "a refused encryption is not counted"
    );

    let k2 = ring.new_data_key();
    ring.activate(k2.id).unwrap();
    assert!(!ring.needs_rotation());
    assert_eq!(ring.active_data_key_uses(), Some(0));
    ring.encrypt(&aad(), b"v").unwrap();
}

#[test]
fn an_exhausted_key_still_decrypts() {
    let ring = KeyRing::new(master("mk-1"), vec![]).with_limits(1, 1);
    let k = ring.new_data_key();
    ring.activate(k.id).unwrap();
    let blob = ring.encrypt(&aad(), b"v").unwrap();
    assert!(ring.encrypt(&aad(), b"v").is_err());
    assert_eq!(ring.decrypt(&aad(), &blob).unwrap(), b"v");
}

#[test]
fn default_limits_are_the_documented_constants() {
    assert_eq!(DATA_KEY_MAX_USES, 1 << 28);
    assert_eq!(DATA_KEY_HARD_LIMIT, 1 << 31);
    let ring = KeyRing::new(master("mk-1"), vec![]);
    assert_eq!(
        (ring.max_uses, ring.hard_limit),
        (DATA_KEY_MAX_USES, DATA_KEY_HARD_LIMIT)
    );
}

#[test]
fn with_limits_can_only_tighten() {
    let ring = KeyRing::new(master("mk-1"), vec![]).with_limits(u64::MAX, u64::MAX);
    assert_eq!(
        (ring.max_uses, ring.hard_limit),
        (DATA_KEY_MAX_USES, DATA_KEY_HARD_LIMIT)
    );
    let ring = KeyRing::new(master("mk-1"), vec![]).with_limits(10, 4);
    assert_eq!((ring.max_uses, ring.hard_limit), (4, 4));
}

#[test]
fn concurrent_encryptions_never_exceed_the_hard_limit() {
    let ring = Arc::new(KeyRing::new(master("mk-1"), vec![]).with_limits(50, 100));
    let k = ring.new_data_key();
    ring.activate(k.id).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || (0..60).filter(|_| ring.encrypt(&aad(), b"v").is_ok()).count())
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(ok, 100);
    assert_eq!(ring.active_data_key_uses(), Some(100));
}

#[test]
fn key_ring_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeyRing>();
    assert_send_sync::<Arc<KeyRing>>();
}

// --- misc ------------------------------------------------------------------------------------------

#[test]
fn wrapped_data_key_round_trips_through_serde() {
    let k = KeyRing::new(master("mk-1"), vec![]).new_data_key();
    let json = serde_json::to_string(&k).unwrap();
    let back: WrappedDataKey = serde_json::from_str(&json).unwrap();
    assert_eq!(back, k);
}

#[test]
fn debug_of_key_ring_shows_ids_but_no_key_material() {
    let m = master("mk-1");
    let ring = KeyRing::new(m.clone(), vec![master("mk-0")]);
    let k = ring.new_data_key();
    ring.activate(k.id).unwrap();
    let shown = format!("{ring:?}");
    assert!(shown.contains("mk-1") && shown.contains("mk-0"));
    assert!(shown.contains(&k.id.to_string()));
    assert!(!shown.contains(&m.to_base64()[..10]));
    let data_key = read(&ring.data_keys)[&k.id].key.clone();
    assert!(!shown.contains(&hex::encode(&data_key[..])[..8]));
}

#[test]
fn errors_display_without_key_material() {
    let id = Uuid::from_u128(1);
    assert_eq!(CryptoError::Decrypt.to_string(), "decryption failed");
    assert!(
        CryptoError::UnknownDataKey(id)
            .to_string()
            .contains(&id.to_string())
    );
    assert!(
        CryptoError::UnknownMasterKey("mk-9".into())
            .to_string()
            .contains("mk-9")
    );
}
