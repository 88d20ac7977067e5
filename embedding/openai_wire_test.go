package embedding

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestVectorDecodesFloatsAndBase64(t *testing.T) {
	cases := []struct {
		name, in string
		want     vector
		bad      bool
	}{
		{"floats", `[0.5, -1, 2]`, vector{0.5, -1, 2}, false},
		{"base64 of float32 LE", `"AAAAPwAAgL8AAABA"`, vector{0.5, -1, 2}, false},
		{"not base64", `"!!!"`, nil, true},
		{"not whole float32s", `"AAAA/w8="`, nil, true},
		{"neither", `{"x":1}`, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v vector
			err := json.Unmarshal([]byte(c.in), &v)
			if c.bad != (err != nil) || (!c.bad && !reflect.DeepEqual(v, c.want)) {
				t.Fatalf("decode %s = %v, %v", c.in, v, err)
			}
		})
	}
}

func TestMaxAnswerBytesFitsTheLargestAnswer(t *testing.T) {
	// 128 vectors of 3,072 values printed at full float precision.
	vec := make([]float32, 3072)
	for i := range vec {
		vec[i] = -0.012345678
	}
	one, _ := json.Marshal(map[string]any{"object": "embedding", "index": 127, "embedding": vec})
	if need := int64(128 * len(one)); maxAnswerBytes(128, 3072) < need {
		t.Fatalf("limit %d below a real answer of %d bytes", maxAnswerBytes(128, 3072), need)
	}
	if maxAnswerBytes(128, 3072) > 1<<30 {
		t.Fatal("limit above the old 1 GiB")
	}
}

func TestRefusesEncodingFormat(t *testing.T) {
	for msg, want := range map[string]bool{
		"Unrecognized request argument supplied: encoding_format": true,
		"unsupported encoding format base64":                      true,
		"input[3] is too long":                                    false,
	} {
		if refusesEncodingFormat(msg) != want {
			t.Errorf("refusesEncodingFormat(%q) = %v", msg, !want)
		}
	}
}
