use super::*;

fn opts(skip_invalid: bool) -> LoadOptions {
    LoadOptions { skip_invalid, ..LoadOptions::default() }
}

#[test]
fn events_with_top_level_and_nested_identifiers() {
    let input = r#"{"event_id":"1","timestamp":"2024-05-01T10:00:00Z","channel":"web","type":"view","cookie_id":"c1","item_id":"i1"}

{"event_id":"2","timestamp":1714557700,"channel":"kiosk","type":"purchase","identifiers":{"email":"A@x.org","loyalty_id":42},"item_id":7,"value":"2"}
{"event_id":"1","timestamp":1,"channel":"web","type":"view","cookie_id":"c1","item_id":"i1"}
{"timestamp":5,"channel":"email","type":"email_open","email":"a@x.org"}
"#;
    let (events, report) = read_events(input.as_bytes(), "events.jsonl", &opts(false)).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(report.duplicates, 1);
    assert_eq!(events[0].timestamp, 1_714_557_600);
    assert_eq!(events[1].channel, Channel::Custom("kiosk".into()));
    assert_eq!(events[1].item_id.as_deref(), Some("7"));
    assert_eq!(events[1].value, Some(2.0));
    // Priority order does not matter here; both identifiers are kept, the email hashed.
    let kinds: Vec<_> = events[1].identifiers.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [IdentifierKind::LoyaltyId, IdentifierKind::Email]);
    assert_eq!(events[2].identifiers, events[1].identifiers[1..]);
    assert!(events[2].item_id.is_none());
}

fn first_error(input: &str) -> String {
    read_events(input.as_bytes(), "ev.jsonl", &opts(false)).unwrap_err().to_string()
}

#[test]
fn event_errors_name_file_line_and_field() {
    let ok = r#"{"timestamp":1,"channel":"web","type":"view","user_id":"u","item_id":"i"}"#;
    let cases = [
        (
            r#"{"timestamp":1,"channel":"web","type":"view","item_id":"i"}"#,
            "field `identifiers`: no identifier",
        ),
        (r#"{"timestamp":1,"type":"view","user_id":"u","item_id":"i"}"#, "field `channel`: missing"),
        (r#"{"timestamp":1,"channel":"web","user_id":"u","item_id":"i"}"#, "field `type`: missing"),
        (
            r#"{"timestamp":1,"channel":"web","type":"view","user_id":"u","item_id":"a\tb"}"#,
            "field `item_id`: contains the control character '\\t'",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"view","cookie_id":"c\nd","item_id":"i"}"#,
            "field `cookie_id`: contains the control character '\\n'",
        ),
        (
            r#"{"timestamp":1,"channel":"store","type":"purchase","user_id":"u","item_id":"i","value":-5}"#,
            "field `value`: -5 is negative; a purchase's value is its revenue",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"purchase","user_id":"u"}"#,
            "field `item_id`: missing, and a `purchase` event needs one",
        ),
        // Read as floats, two such ids would share one text.
        (
            r#"{"timestamp":1,"channel":"web","type":"view","loyalty_id":12345678901234567890123,"item_id":"i"}"#,
            "field `loyalty_id`: expected a string or a whole number",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"view","user_id":"u","item_id":1.5}"#,
            "field `item_id`: expected a string or a whole number",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"view","user_id":"u","item_id":"i","event_id":1e3}"#,
            "field `event_id`: expected a string or a whole number",
        ),
        (
            r#"{"timestamp":"soon","channel":"web","type":"view","user_id":"u","item_id":"i"}"#,
            "field `timestamp`: `soon`",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"rating","user_id":"u","item_id":"i"}"#,
            "field `value`: missing",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"rating","user_id":"u","item_id":"i","value":"x"}"#,
            "field `value`: expected a finite number",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"view","identifiers":{"fax":"1"},"item_id":"i"}"#,
            "field `identifiers.fax`: unknown identifier type",
        ),
        (
            r#"{"timestamp":1,"channel":"web","type":"view","user_id":["u"],"item_id":"i"}"#,
            "field `user_id`: expected a string or a whole number",
        ),
        (r#"{"timestamp":1,"#, "ev.jsonl:2: not valid JSON"),
        ("[1,2]", "ev.jsonl:2: expected a JSON object"),
    ];
    for (bad, expected) in cases {
        let message = first_error(&format!("{ok}\n{bad}\n"));
        assert!(message.starts_with("ev.jsonl:2"), "{message}");
        assert!(message.contains(expected), "expected `{expected}` in `{message}`");
    }
}

#[test]
fn skip_invalid_counts_and_explains() {
    let input = "{\"timestamp\":1,\"channel\":\"web\",\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\"}\nnot json\n{\"timestamp\":1,\"channel\":\"web\",\"type\":\"view\",\"item_id\":\"i\"}\n";
    let (events, report) = read_events(input.as_bytes(), "ev.jsonl", &opts(true)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(report.skipped, 2);
    assert_eq!(report.skipped_by_field.get("identifiers"), Some(&1));
    assert_eq!(report.skipped_by_field.get("(row)"), Some(&1));
    let summary = report.summary();
    assert!(summary.contains("2 invalid rows skipped"), "{summary}");
    assert!(summary.contains("ev.jsonl:2"), "{summary}");
}

#[test]
fn a_known_field_name_in_another_case_is_refused() {
    let line =
        r#"{"user_id":"u1","Loyalty_ID":"L1","channel":"web","type":"view","item_id":"i1","timestamp":5}"#;
    let err = read_events(line.as_bytes(), "ev.jsonl", &opts(false)).unwrap_err().to_string();
    assert_eq!(
        err,
        "ev.jsonl:1: field `Loyalty_ID`: field names are lowercase, without spaces: write `loyalty_id`"
    );
    // A sender's own fields are left alone.
    let line =
        r#"{"user_id":"u1","Page_URL":"/x","channel":"web","type":"view","item_id":"i1","timestamp":5}"#;
    assert_eq!(read_events(line.as_bytes(), "ev.jsonl", &opts(false)).unwrap().0.len(), 1);
}

#[test]
fn a_user_id_that_reads_as_another_identifier_is_refused() {
    let line = r#"{"user_id":"cookie_id:k1","channel":"web","type":"view","item_id":"i1","timestamp":5}"#;
    let err = read_events(line.as_bytes(), "ev.jsonl", &opts(false)).unwrap_err().to_string();
    assert!(err.starts_with("ev.jsonl:1: field `user_id`: `cookie_id:k1` reads as a cookie_id"), "{err}");
}

#[test]
fn interactions_detect_delimiter_and_optional_columns() {
    let tsv = "user_id\titem_id\tvalue\ttimestamp\nu1\ti1\t4.5\t100\nu2\ti2\t1\t2024-01-01T00:00:00Z\n";
    let (rows, report) = read_interactions(tsv.as_bytes(), "r.tsv", &opts(false)).unwrap();
    assert_eq!(report.rows, 2);
    assert_eq!(
        rows[0],
        RawInteraction { user_id: "u1".into(), item_id: "i1".into(), value: Some(4.5), timestamp: Some(100) }
    );
    assert_eq!(rows[1].timestamp, Some(1_704_067_200));

    let csv = "item_id,user_id\r\nx,a\r\n\r\ny,b\r\n";
    let (rows, _) = read_interactions(csv.as_bytes(), "r.csv", &opts(false)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[1].user_id.as_str(), rows[1].item_id.as_str(), rows[1].value), ("b", "y", None));

    let semicolon = "user_id;item_id;rating\na;b;3\n";
    let (rows, _) = read_interactions(semicolon.as_bytes(), "r.csv", &opts(false)).unwrap();
    assert_eq!(rows[0].value, Some(3.0));
}

#[test]
fn interaction_errors_name_line_and_field() {
    let missing = read_interactions("user,item\na,b\n".as_bytes(), "r.csv", &opts(false)).unwrap_err();
    assert_eq!(missing.to_string(), "r.csv: header has no `user_id` column (found: user, item)");
    let bad_value = "user_id,item_id,value\na,b,1\na,c,lots\n";
    let err = read_interactions(bad_value.as_bytes(), "r.csv", &opts(false)).unwrap_err().to_string();
    assert_eq!(err, "r.csv:3: field `value`: expected a finite number, found `lots`");
    // A quoted tab or newline in an id would split the rows of every file written from it.
    let quoted = "user_id,item_id\n\"tab\tu\",i2\n";
    let err = read_interactions(quoted.as_bytes(), "r.csv", &opts(false)).unwrap_err().to_string();
    assert!(err.starts_with("r.csv:2: field `user_id`: contains the control character"), "{err}");
    let quoted = "user_id,item_id\nu0,\"it\nem\"\n";
    let err = read_interactions(quoted.as_bytes(), "r.csv", &opts(false)).unwrap_err().to_string();
    assert!(err.contains("field `item_id`: contains the control character"), "{err}");
    let short = "user_id,item_id,value\na,b\n";
    let err = read_interactions(short.as_bytes(), "r.csv", &opts(false)).unwrap_err().to_string();
    assert_eq!(err, "r.csv:2: expected 3 fields, found 2");
    let empty_user = "user_id\titem_id\n\tb\n";
    let err = read_interactions(empty_user.as_bytes(), "r.tsv", &opts(false)).unwrap_err().to_string();
    assert_eq!(err, "r.tsv:2: field `user_id`: empty");
    let (rows, report) = read_interactions(bad_value.as_bytes(), "r.csv", &opts(true)).unwrap();
    assert_eq!((rows.len(), report.skipped), (1, 1));
    // The line named is the row's own: with `\r\n` line ends (a spreadsheet's export), after
    // blank lines, and on a last line without its line end.
    for (input, line) in [
        ("user_id,item_id,value\r\na,b,1\r\na,c,lots\r\n", 3),
        ("user_id,item_id,value\r\na,b,1\r\n\r\n\r\na,c,lots\r\n", 5),
        ("user_id,item_id,value\na,b,1\n\n\na,c,lots\n", 5),
        ("user_id,item_id,value\na,b,1\n\na,c,lots", 4),
    ] {
        let err = read_interactions(input.as_bytes(), "r.csv", &opts(false)).unwrap_err().to_string();
        assert!(err.starts_with(&format!("r.csv:{line}: field `value`")), "{input:?}: {err}");
    }
    let (rows, _) =
        read_interactions("user_id,item_id,value\r\na,b,2\r\n".as_bytes(), "r.csv", &opts(false)).unwrap();
    assert_eq!((rows[0].item_id.as_str(), rows[0].value), ("b", Some(2.0)));
    let blank_first = "\nuser_id,item_id\na,b\n";
    let err = read_interactions(blank_first.as_bytes(), "r.csv", &opts(false)).unwrap_err().to_string();
    assert!(err.starts_with("r.csv:1:") && err.contains("header"), "{err}");
    assert!(matches!(read_interactions("".as_bytes(), "e.csv", &opts(false)), Err(Error::Empty(_))));
}

#[test]
fn catalog_csv_and_jsonl() {
    let csv = "item_id,title,categories,brand,tags,price,in_stock,store_stock,available_from\n\
               1,\"Shoe, red\",shoes>running|sale,Acme,eco|new,59.90,yes,s1:3|s2:0,2024-01-01\n\
               2,Cap,,,,,0,,\n";
    let (catalog, _) = read_catalog(csv.as_bytes(), "c.csv", CatalogFormat::Delimited, &opts(false)).unwrap();
    let shoe = &catalog.items[0];
    assert_eq!(shoe.title, "Shoe, red");
    assert_eq!(shoe.categories, ["shoes>running", "sale"]);
    assert_eq!(shoe.top_category(), Some("shoes"));
    assert_eq!(shoe.tags, ["eco", "new"]);
    assert_eq!(shoe.price, Some(59.9));
    assert_eq!(shoe.store_stock.get("s1"), Some(&3));
    assert_eq!(shoe.available_from, Some(1_704_067_200));
    assert!(!catalog.items[1].in_stock);

    let jsonl = r#"{"item_id":"a","title":"A","categories":["x>y"],"tags":["t"],"price":2,"in_stock":false,"store_stock":{"s1":4}}
{"item_id":"b"}"#;
    let (catalog, _) =
        read_catalog(jsonl.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false)).unwrap();
    assert_eq!(catalog.items[0].categories, ["x>y"]);
    assert_eq!(catalog.items[0].store_stock.get("s1"), Some(&4));
    assert!(!catalog.items[0].in_stock);
    assert_eq!(catalog.items[1].title, "b");
    assert!(catalog.items[1].in_stock);
}

#[test]
fn blank_event_ids_are_none_and_whole_numbers_are_ids() {
    let line = |id: &str| {
        format!(
            r#"{{"timestamp":1,"channel":"web","type":"view","user_id":{id},"item_id":"i","event_id":" "}}"#
        )
    };
    let input = [line("7"), line("\"u\""), line("18446744073709551615")].join("\n");
    let (events, report) = read_events(input.as_bytes(), "ev.jsonl", &opts(false)).unwrap();
    assert_eq!((events.len(), report.duplicates), (3, 0));
    assert!(events.iter().all(|e| e.event_id.is_none()));
    assert_eq!(events[2].identifiers[0].value, "18446744073709551615");
    let input = "{\"item_id\": 1.0}\n";
    let err = read_catalog(input.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false)).unwrap_err();
    assert!(err.to_string().contains("field `item_id`: expected a string or a whole number"), "{err}");
}

#[test]
fn catalog_errors() {
    let cases = [
        ("item_id,price\n1,-3\n", "c.csv:2: field `price`: must not be negative"),
        ("item_id,in_stock\n1,maybe\n", "c.csv:2: field `in_stock`: expected true or false"),
        ("item_id,store_stock\n1,s1\n", "c.csv:2: field `store_stock`: expected `store:units`"),
        ("item_id\n1\n1\n", "c.csv:3: field `item_id`: `1` appears twice"),
        // A title over two lines: the next row is on line 4.
        ("item_id,title,price\n1,\"a\r\nb\",3\r\n2,x,-1\r\n", "c.csv:4: field `price`: must not be negative"),
    ];
    for (input, expected) in cases {
        let err =
            read_catalog(input.as_bytes(), "c.csv", CatalogFormat::Delimited, &opts(false)).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{err}");
    }
    assert_eq!(CatalogFormat::from_path("items.JSONL"), CatalogFormat::JsonLines);
    assert_eq!(CatalogFormat::from_path("movies.tsv"), CatalogFormat::Delimited);
}

#[test]
fn movielens_style_tsv_titles_with_quotes() {
    let tsv = "item_id\ttitle\tcategories\n1\t\"Great\" Escape (1963)\tAction|War\n";
    let (catalog, _) = read_catalog(tsv.as_bytes(), "m.tsv", CatalogFormat::Delimited, &opts(false)).unwrap();
    assert_eq!(catalog.items[0].title, "\"Great\" Escape (1963)");
    assert_eq!(catalog.items[0].categories, ["Action", "War"]);
}

#[test]
fn values_beyond_the_f32_safe_range_are_refused() {
    let line = |value: &str| {
        format!(
            r#"{{"timestamp":1,"channel":"web","type":"rating","user_id":"u","item_id":"i","value":{value}}}"#
        )
    };
    for value in ["1e308", "-1e308", "\"1e39\"", "2e9"] {
        let err = first_error(&line(value));
        assert!(
            err.contains("field `value`: expected a finite number of magnitude at most 1e9"),
            "{value}: {err}"
        );
    }
    assert!(read_events(line("1e9").as_bytes(), "ev.jsonl", &opts(false)).is_ok());
    let err = read_interactions("user_id,item_id,value\nu,i,1e308\n".as_bytes(), "r.csv", &opts(false))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("r.csv:2: field `value`: expected a finite number of magnitude"), "{err}");
    let err =
        read_catalog("item_id,price\n1,1e300\n".as_bytes(), "c.csv", CatalogFormat::Delimited, &opts(false))
            .unwrap_err()
            .to_string();
    assert!(err.starts_with("c.csv:2: field `price`"), "{err}");
}

#[test]
fn events_dated_after_the_bound_are_refused_or_skipped() {
    let bound = LoadOptions { skip_invalid: false, max_timestamp: Some(1_800_000_000) };
    let input = "{\"timestamp\":1700000000,\"channel\":\"web\",\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\"}\n\
                 {\"timestamp\":\"2045-01-01T00:00:00Z\",\"channel\":\"web\",\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"j\"}\n";
    let err = read_events(input.as_bytes(), "ev.jsonl", &bound).unwrap_err().to_string();
    assert!(err.starts_with("ev.jsonl:2: field `timestamp`: 2045-01-01T00:00:00Z is in the future"), "{err}");
    let skipping = LoadOptions { skip_invalid: true, ..bound };
    let (events, report) = read_events(input.as_bytes(), "ev.jsonl", &skipping).unwrap();
    assert_eq!((events.len(), report.skipped, report.skipped_by_field["timestamp"]), (1, 1, 1));
    let rows = "user_id,item_id,timestamp\nu,i,1700000000\nu,j,1900000000\n";
    let err = read_interactions(rows.as_bytes(), "r.csv", &bound).unwrap_err().to_string();
    assert!(err.starts_with("r.csv:3: field `timestamp`"), "{err}");
}

#[test]
fn invalid_utf8_rows_are_skipped_with_skip_invalid_and_named_without() {
    let good =
        b"{\"timestamp\":1,\"channel\":\"web\",\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\"}\n";
    let mut events = good.to_vec();
    events.extend_from_slice(
        b"{\"timestamp\":1,\"channel\":\"w\xff\",\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\"}\n",
    );
    events.extend_from_slice(good);
    let err = read_events(&events[..], "ev.jsonl", &opts(false)).unwrap_err().to_string();
    assert!(err.starts_with("ev.jsonl:2: field `(encoding)`: not valid UTF-8"), "{err}");
    let (read, report) = read_events(&events[..], "ev.jsonl", &opts(true)).unwrap();
    assert_eq!((read.len(), report.skipped_by_field["(encoding)"]), (2, 1));

    let rows = b"user_id,item_id\nu,i\nu,\xc3\x28\nv,i\n";
    let err = read_interactions(&rows[..], "r.csv", &opts(false)).unwrap_err().to_string();
    assert!(err.starts_with("r.csv:3: field `(encoding)`"), "{err}");
    let (read, report) = read_interactions(&rows[..], "r.csv", &opts(true)).unwrap();
    assert_eq!((read.len(), report.skipped), (2, 1));

    let items = b"{\"item_id\":\"a\"}\n{\"item_id\":\"\xfe\"}\n{\"item_id\":\"b\"}\n";
    let (catalog, report) =
        read_catalog(&items[..], "c.jsonl", CatalogFormat::JsonLines, &opts(true)).unwrap();
    assert_eq!((catalog.items.len(), report.skipped), (2, 1));
    let items = b"item_id,title\na,A\nb,\xff\nc,C\n";
    let (catalog, report) = read_catalog(&items[..], "c.csv", CatalogFormat::Delimited, &opts(true)).unwrap();
    assert_eq!((catalog.items.len(), report.skipped), (2, 1));
}

#[test]
fn a_byte_order_mark_does_not_break_json_lines() {
    let events = "\u{feff}{\"timestamp\":1,\"channel\":\"web\",\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\"}\n";
    assert_eq!(read_events(events.as_bytes(), "ev.jsonl", &opts(false)).unwrap().0.len(), 1);
    let items = "\u{feff}{\"item_id\":\"a\"}\n";
    let (catalog, _) =
        read_catalog(items.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false)).unwrap();
    assert_eq!(catalog.items[0].item_id, "a");
}

#[test]
fn catalog_json_fields_of_the_wrong_type_are_errors() {
    let cases = [
        (r#"{"item_id":"a","price":{"amount":3}}"#, "field `price`: expected a number"),
        (r#"{"item_id":"a","price":true}"#, "field `price`: expected a number"),
        (
            r#"{"item_id":"a","categories":{"top":"shoes"}}"#,
            "field `categories`: expected a string or a list",
        ),
        (r#"{"item_id":"a","title":["x"]}"#, "field `title`: expected a string"),
        (r#"{"item_id":"a","store_stock":[1]}"#, "field `store_stock`: expected an object"),
    ];
    for (line, expected) in cases {
        let err = read_catalog(line.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("c.jsonl:1: {expected}")), "{line}: {err}");
    }
    // Fields of its own are the file's business.
    let extra = r#"{"item_id":"a","colour":{"r":1},"price":"3.5"}"#;
    let (catalog, _) =
        read_catalog(extra.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false)).unwrap();
    assert_eq!(catalog.items[0].price, Some(3.5));
}

#[test]
fn an_availability_window_that_ends_before_it_starts_is_refused() {
    let csv = "item_id,available_from,available_until\n1,2026-02-01,2026-01-01\n";
    let err = read_catalog(csv.as_bytes(), "c.csv", CatalogFormat::Delimited, &opts(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.csv:2: field `available_until`: 2026-01-01T00:00:00Z is before available_from"),
        "{err}"
    );
    let json = r#"{"item_id":"1","available_from":"2026-02-01","available_until":"2026-01-01"}"#;
    let err = read_catalog(json.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("field `available_until`"), "{err}");
}

#[test]
fn a_catalog_names_a_bounded_number_of_stores() {
    use crate::load::catalog::MAX_STORES;
    let item = |id: &str, stores: std::ops::Range<usize>| {
        let stock: serde_json::Map<String, serde_json::Value> =
            stores.map(|s| (format!("s{s}"), serde_json::Value::from(1))).collect();
        serde_json::json!({"item_id": id, "store_stock": stock}).to_string()
    };
    let half = MAX_STORES / 2;
    // Stores shared between items count once.
    let fits = [item("a", 0..half), item("b", 0..MAX_STORES)].join("\n");
    let (catalog, _) =
        read_catalog(fits.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false)).unwrap();
    assert_eq!(catalog.items.len(), 2);
    let over =
        [item("a", 0..half), item("b", half..MAX_STORES), item("c", MAX_STORES..MAX_STORES + 1)].join("\n");
    let error = read_catalog(over.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("c.jsonl:3: field `store_stock`"), "{message}");
    let (catalog, report) =
        read_catalog(over.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(true)).unwrap();
    assert_eq!((catalog.items.len(), report.rows), (2, 2));
}

#[test]
fn repeated_keys_in_event_and_catalog_lines_are_named() {
    let line = r#"{"cookie_id": "c1", "channel": "web", "type": "view", "type": "purchase", "item_id": "i1", "timestamp": 1700000000}"#;
    let err = parse_event(line, "events.jsonl", 4).unwrap_err().to_string();
    assert!(err.contains("events.jsonl:4") && err.contains("`type`") && err.contains("twice"), "{err}");
    let nested = r#"{"identifiers": {"email": "a@x.com", "email": "b@x.com"}, "channel": "web", "type": "view", "item_id": "i1", "timestamp": 1700000000}"#;
    let err = parse_event(nested, "events.jsonl", 5).unwrap_err().to_string();
    assert!(err.contains("identifiers.email"), "{err}");
    let items = "{\"item_id\": \"a\", \"title\": \"A\", \"item_id\": \"b\"}\n";
    let err = read_catalog(items.as_bytes(), "c.jsonl", CatalogFormat::JsonLines, &opts(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.jsonl:1") && err.contains("item_id") && err.contains("twice"), "{err}");
}
