#pragma once
// Umbrella header: everything a processor author needs.

#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/record_processor.hpp"
#include "kclpp/processor/retry.hpp"
#include "kclpp/processor/sequence_number.hpp"
