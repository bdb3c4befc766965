#pragma once
// statsd metrics over UDP, as the Kinesis Keeper design asks for: the client moved down
// into kclpp::processor (kclpp/processor/statsd.hpp) so that the native worker and
// `kclpp daemon` push through the same one; these names keep pipeline code compiling.
#include "kclpp/processor/statsd.hpp"

namespace kclpp::pipeline {

using Statsd = kclpp::Statsd;
using kclpp::metric_name_part;

}  // namespace kclpp::pipeline
